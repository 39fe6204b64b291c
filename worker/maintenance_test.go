package worker_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/maintenance"
	"github.com/baton-run/baton/worker"
)

// The defaults a Config documents are the ones maintenance applies.
func TestMaintenanceDefaultsAreTheDocumentedOnes(t *testing.T) {
	require.Equal(t, worker.DefaultRetention, worker.Retention(maintenance.DefaultRetention))
	require.Equal(t, worker.DefaultReaderLimits, worker.ReaderLimits(maintenance.DefaultReaderLimits))
}
