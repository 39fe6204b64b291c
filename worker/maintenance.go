package worker

import "time"

// Retention says how long finished jobs are kept, with their history, by
// final state: maintenance deletes them once they have been finished that
// long. A queue may override each (PATCH /v1/queues/{queue}, baton queue
// set); a negative duration keeps them forever. Zero fields take
// DefaultRetention.
type Retention struct {
	Succeeded, Dead, Canceled time.Duration
}

// DefaultRetention keeps succeeded jobs a day, and dead or canceled ones (to
// look into, or re-drive) a week.
var DefaultRetention = Retention{Succeeded: 24 * time.Hour, Dead: 7 * 24 * time.Hour, Canceled: 7 * 24 * time.Hour}

// ReaderLimits bound the transactions of the reporting role's sessions
// (baton_reader, docs/reader-role.sql). A reader's open transaction holds
// back vacuum, and its locks queue every writer behind the next migration;
// PostgreSQL 15 lets the session lift its own timeouts, so maintenance ends
// a session past these limits. Zero fields take DefaultReaderLimits.
type ReaderLimits struct {
	// IdleInTransaction ends a session idle in a transaction this long.
	IdleInTransaction time.Duration
	// Transaction ends a session whose transaction (a statement, or
	// statements one after another) has been open this long.
	Transaction time.Duration
}

// DefaultReaderLimits end a reader's session idle in a transaction for a
// minute, or in one transaction for five.
//
// (Both defaults are maintenance's, which applies them; a test holds them
// equal.)
var DefaultReaderLimits = ReaderLimits{IdleInTransaction: time.Minute, Transaction: 5 * time.Minute}
