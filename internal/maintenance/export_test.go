package maintenance

// PassTurn is passTurn, for the tests.
var PassTurn = passTurn
