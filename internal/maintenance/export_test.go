package maintenance

// PassTurn is passTurn, for the tests.
var PassTurn = passTurn

// VacuumWait and VacuumDue are vacuumWait and vacuumDue, for the tests.
type VacuumWait = vacuumWait

var VacuumDue = vacuumDue

const MaxVacuumWait = maxVacuumWait
