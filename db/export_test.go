package db

// JobClaimSQL lets the external tests look at the claim's plans.
const JobClaimSQL = jobClaim
