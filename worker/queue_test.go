package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/batontest"
	"github.com/baton-run/baton/db"
	"github.com/baton-run/baton/worker"
)

type invoice struct {
	Order int64 `json:"order"`
	Cents int64 `json:"cents"`
}

type receipt struct {
	Order int64  `json:"order"`
	Text  string `json:"text"`
}

var (
	invoices = worker.Queue[invoice]{Name: "invoices"}
	receipts = worker.Queue[receipt]{Name: "receipts"}
)

// One value per queue ties its name to its payload type: a submit encodes
// it, the handlers decode it, and the hand-off between two typed stages is
// typed too.
func TestTypedQueuesCarryTheirTypeThroughAPipeline(t *testing.T) {
	t.Parallel()
	pool := batontest.New(t)
	ctx := context.Background()
	printed := make(chan receipt, 1)
	w, err := worker.New(pool, worker.Config{
		Pipeline: &worker.Pipeline{Stages: []worker.Stage{
			{Queue: invoices.Name, Handler: worker.HandlerSpec{Go: "bill"}, Next: receipts.Name},
			{Queue: receipts.Name, Handler: worker.HandlerSpec{Go: "print"}},
		}},
		Handlers: worker.Handlers{
			"bill": worker.Then(invoices, receipts, func(ctx context.Context, job *worker.Job, in invoice) (receipt, error) {
				return receipt{Order: in.Order, Text: fmt.Sprintf("%d.%02d paid", in.Cents/100, in.Cents%100)}, nil
			}),
			"print": receipts.Handler(func(ctx context.Context, job *worker.Job, r receipt) error {
				printed <- r
				return nil
			}),
		},
	})
	require.NoError(t, err)
	stop := run(w)
	defer stop()

	// Submitted in a transaction, with options.
	var id int64
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		id, err = invoices.Submit(ctx, tx, invoice{Order: 7, Cents: 1250}, func(j *db.NewJob) { j.Priority = 3; j.Tags = []string{"order:7"} })
		if err != nil {
			return err
		}
		j := batontest.RequireSubmitted(t, tx, invoices.Name)
		require.Equal(t, id, j.ID)
		require.EqualValues(t, 3, j.Priority)
		require.JSONEq(t, `{"order":7,"cents":1250}`, string(j.Payload))
		return nil
	}))
	require.Equal(t, receipt{Order: 7, Text: "12.50 paid"}, <-printed)
	r := batontest.WaitForSubmitted(t, pool, receipts.Name)
	require.Equal(t, []string{"order:7"}, r.Tags, "the hand-off keeps the journey's tags")
	batontest.WaitForState(t, pool, r.ID, db.StateSucceeded)
}

// A typed handler named by a stage of other queues, a handler no stage
// names, and a stage whose handler is missing are errors from New, not jobs
// that wait for good.
func TestNewRefusesHandlersAndStagesThatDoNotMatch(t *testing.T) {
	t.Parallel()
	bill := worker.Then(invoices, receipts, func(context.Context, *worker.Job, invoice) (receipt, error) { return receipt{}, nil })
	print := receipts.Handler(func(context.Context, *worker.Job, receipt) error { return nil })
	stage := func(queue, handler, next string) worker.Stage {
		return worker.Stage{Queue: queue, Handler: worker.HandlerSpec{Go: handler}, Next: next}
	}
	for _, c := range []struct {
		name     string
		stages   []worker.Stage
		handlers worker.Handlers
		want     string
	}{
		{"another queue", []worker.Stage{stage("bills", "bill", "receipts")}, worker.Handlers{"bill": bill}, `stage bills: invalid pipeline: its Go handler "bill" works queue invoices`},
		{"another next", []worker.Stage{stage("invoices", "bill", "emails")}, worker.Handlers{"bill": bill}, `hands on to "emails", but its Go handler "bill" hands on to receipts`},
		{"no next", []worker.Stage{stage("invoices", "bill", "")}, worker.Handlers{"bill": bill}, `hands on to "", but its Go handler "bill" hands on to receipts`},
		{"a next for a last stage", []worker.Stage{stage("receipts", "print", "archive")}, worker.Handlers{"print": print}, `hands nothing on (use worker.Then)`},
		{"a handler no stage names", []worker.Stage{stage("receipts", "print", "")}, worker.Handlers{"print": print, "bill": bill}, `no stage names the Go handler "bill"`},
		{"a stage without its handler", []worker.Stage{stage("receipts", "print", "")}, worker.Handlers{}, `no Go handler named "print"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := worker.New(nil, worker.Config{Pipeline: &worker.Pipeline{Stages: c.stages}, Handlers: c.handlers})
			require.ErrorIs(t, err, worker.ErrPipeline)
			require.ErrorContains(t, err, c.want)
			require.False(t, strings.Contains(err.Error(), "stage bills: stage"), err.Error())
		})
	}
}
