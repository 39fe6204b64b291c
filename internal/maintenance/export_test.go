package maintenance

// ReapWait is reapWait, for the tests.
var ReapWait = reapWait

// VacuumWait and VacuumDue are vacuumWait and vacuumDue, for the tests.
type VacuumWait = vacuumWait

var (
	VacuumDue  = vacuumDue
	VacuumTurn = vacuumTurn
)

const MaxVacuumWait = maxVacuumWait
