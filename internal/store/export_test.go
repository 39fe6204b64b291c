package store

// The statements whose plans the external tests look at.
const (
	JobClaimSQL        = jobClaim
	JobPruneSQL        = jobPrune
	JobListSQL         = jobList
	JobCompleteManySQL = jobCompleteMany
	JobHeartbeatSQL    = jobHeartbeat
	JobReleaseManySQL  = jobReleaseMany
	JobNoteClaimsSQL   = jobNoteClaims
)
