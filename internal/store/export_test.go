package store

// The statements whose plans the external tests look at.
const (
	JobClaimSQL = jobClaim
	JobPruneSQL = jobPrune
	JobListSQL  = jobList
)
