package maintenance

// TakeTurn and ReapWait are takeTurn and reapWait, for the tests.
var (
	TakeTurn = takeTurn
	ReapWait = reapWait
)

// VacuumWait and VacuumDue are vacuumWait and vacuumDue, for the tests.
type VacuumWait = vacuumWait

var (
	VacuumDue  = vacuumDue
	VacuumTurn = vacuumTurn
)

const MaxVacuumWait = maxVacuumWait
