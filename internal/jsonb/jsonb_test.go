package jsonb_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/baton-run/baton/internal/dbtest"
	"github.com/baton-run/baton/internal/jsonb"
)

// cases are JSON texts at the edges of what jsonb stores.
var cases = []string{
	`{"a": [1, "b", null, true, false, {"c": -2.5e3}]}`,
	`"\u0000"`, `{"a": "x\u0000y"}`, `{"a\u0000": 1}`, `"a\\u0000"`, `"\\\u0000"`,
	`"\ud800"`, `"\udc00x"`, `"\ud83d\ude00"`, `"\ud83d\u0041"`, `"\ud83d"`, `"\ud83d\\ude00"`, `"\uDBFF\uDFFF"`,
	`{"a":"\\ud800"}`, `{"a":"\u00e9\n"}`, `{"a":"\ud800x"}`, `{"a":"\ud800\n"}`, `{"\ud800":1}`,
	`1e131071`, `1e131072`, `1E+131071`, `-1e131072`, `1e-16383`, `1e-16384`, `0e-16384`, `0e999999999`,
	`0e1073741822`, `0e1073741823`, `0e-1073741823`, `1e00000000000000000000005`, `0.0001e131075`, `0.0001e131076`,
	`123.5e-16382`, `0.5e-16383`, `0.00000e16388`,
	`0`, `-0`, `-0.0`, `0.000`, `0e5`, `0.00e1`, `1.50`, `-1.5e1`, `12e-1`, `100e-2`, `1e400`, `-1e-5`, `0.0001`,
	`12345.678e2`, `9.99e-1`, `-123`, `5E+2`, `0.5`, `-0.05e1`, `1e0`, `10e-1`,
	"1" + strings.Repeat("0", 131071), "1" + strings.Repeat("0", 131072),
	"0." + strings.Repeat("0", 16383), "0." + strings.Repeat("0", 16384),
	strings.Repeat("0", 1) + "." + strings.Repeat("1", 16383) + "e0",
	"\"\xff\"", "\"caf\xc3\"", `[1, 2`, `{"a": 1}{}`, ``, `nul`,
	strings.Repeat("[", 5000) + strings.Repeat("]", 5000),
}

// jsonb.Check accepts exactly what PostgreSQL's jsonb input accepts.
func TestCheckAgreesWithPostgres(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	for _, c := range cases {
		agree(t, pool, c)
	}
}

func agree(t *testing.T, pool *pgxpool.Pool, text string) {
	t.Helper()
	var ok bool
	dbErr := pool.QueryRow(context.Background(), "SELECT $1::text::jsonb IS NOT NULL", text).Scan(&ok)
	err := jsonb.Check([]byte(text), 0)
	short := text
	if len(short) > 60 {
		short = short[:60] + "…"
	}
	require.Equal(t, dbErr == nil, err == nil, "%q: postgres says %v, Check says %v", short, dbErr, err)
	if tok := jsonb.NewScanner([]byte(text)).Next(); err == nil && tok.IsNumber() {
		var written int
		require.NoError(t, pool.QueryRow(context.Background(), "SELECT length($1::text::jsonb::text)", text).Scan(&written))
		n, err := jsonb.Rendered(tok.Raw)
		require.NoError(t, err)
		require.Equal(t, written, n, "%q: the length PostgreSQL writes it out at", short)
	}
}

func FuzzCheckAgreesWithPostgres(f *testing.F) {
	for _, c := range cases {
		if len(c) < 1000 {
			f.Add(c)
		}
	}
	pool := dbtest.New(f)
	f.Fuzz(func(t *testing.T, text string) {
		if strings.ContainsRune(text, 0) {
			return // a NUL byte cannot even be sent as text
		}
		agree(t, pool, text)
	})
}

func TestErrorsNameThePath(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text, path string
		want       error
	}{
		{`{"a": [1, {"b": "\u0000"}]}`, "a[1].b", jsonb.ErrNUL},
		{`[0, 1e999999]`, "[1]", jsonb.ErrNumber},
		{`{"x\ud800": 1}`, "x\ufffd", jsonb.ErrSurrogate},
		{`"\udc00"`, "", jsonb.ErrSurrogate},
		{"[\"\xff\"]", "", jsonb.ErrUTF8},
		{`{"a":`, "", jsonb.ErrSyntax},
	} {
		err := jsonb.Check([]byte(tt.text), 0)
		require.ErrorIs(t, err, tt.want, tt.text)
		var e *jsonb.Error
		require.True(t, errors.As(err, &e))
		require.Equal(t, tt.path, e.Path, tt.text)
	}
}

func TestValueLimits(t *testing.T) {
	t.Parallel()
	value := func(text string, lim jsonb.Limits) (string, error) {
		s := jsonb.NewScanner([]byte(text))
		raw, err := s.Value(s.Next(), lim)
		return string(raw), err
	}
	raw, err := value(` {"a": [1, 2], "b": {"c": null}} `, jsonb.Limits{UniqueKeys: true})
	require.NoError(t, err)
	require.Equal(t, `{"a": [1, 2], "b": {"c": null}}`, raw, "the value as written, without the space around it")

	_, err = value(`{"a": 1, "b": {"c": 1, "c": 2}}`, jsonb.Limits{UniqueKeys: true})
	require.ErrorIs(t, err, jsonb.ErrDuplicateKey)
	require.Equal(t, "b.c", err.(*jsonb.Error).Path)
	_, err = value(`{"a": 1, "\u0061": 2}`, jsonb.Limits{UniqueKeys: true})
	require.ErrorIs(t, err, jsonb.ErrDuplicateKey, "keys compare decoded")
	_, err = value(`{"a": 1, "a": 2}`, jsonb.Limits{})
	require.NoError(t, err, "jsonb keeps the last")

	// Objects with many keys (past the in-place comparison) still find twins.
	var b strings.Builder
	b.WriteString("{")
	for i := range 1000 {
		b.WriteString(`"k` + strconv.Itoa(i) + `": 1,`)
	}
	b.WriteString(`"k7": 2}`)
	_, err = value(b.String(), jsonb.Limits{UniqueKeys: true})
	require.ErrorIs(t, err, jsonb.ErrDuplicateKey)

	// The cap stops the walk at the first token past it.
	_, err = value(`[`+strings.Repeat(`0,`, 1000)+`0]`, jsonb.Limits{MaxBytes: 100})
	require.ErrorIs(t, err, jsonb.ErrTooLarge)
	_, err = value(`"`+strings.Repeat("x", 200)+`"`, jsonb.Limits{MaxBytes: 100})
	require.ErrorIs(t, err, jsonb.ErrTooLarge)
	_, err = value(`"`+strings.Repeat("x", 98)+`"`, jsonb.Limits{MaxBytes: 100})
	require.NoError(t, err)

	// Numbers count at their length written out in full, as PostgreSQL
	// writes them on every read: 1e99 is 100 digits.
	_, err = value(`[1e99]`, jsonb.Limits{MaxBytes: 100})
	require.ErrorIs(t, err, jsonb.ErrExpands)
	_, err = value(`1e99`, jsonb.Limits{MaxBytes: 100})
	require.NoError(t, err)
	_, err = value(`1e100`, jsonb.Limits{MaxBytes: 100})
	require.ErrorIs(t, err, jsonb.ErrExpands)
	_, err = value(`{"a": 1e-97}`, jsonb.Limits{MaxBytes: 100})
	require.ErrorIs(t, err, jsonb.ErrExpands, "0.000…1 is 99 bytes, its object more")
	_, err = value(`[`+strings.Repeat(`1e400,`, 101)+`1]`, jsonb.Limits{MaxBytes: 40 << 10})
	require.NoError(t, err, "3 + 402×101 bytes")
	_, err = value(`[`+strings.Repeat(`1e400,`, 102)+`1]`, jsonb.Limits{MaxBytes: 40 << 10})
	require.ErrorIs(t, err, jsonb.ErrExpands)
	require.NoError(t, jsonb.Check([]byte(`[1e131071]`), 256<<10))
	require.ErrorIs(t, jsonb.Check([]byte(`[1e131071, 1e131071]`), 256<<10), jsonb.ErrExpands)
}

func TestTooDeep(t *testing.T) {
	t.Parallel()
	require.False(t, jsonb.TooDeep([]byte(`{"a": [[1]]}`), 3))
	require.True(t, jsonb.TooDeep([]byte(`{"a": [[[1]]]}`), 3))
	require.False(t, jsonb.TooDeep([]byte(`{"a": "[[[[\"[[["}`), 1), "brackets in strings do not count")
	require.True(t, jsonb.TooDeep([]byte(strings.Repeat("[", 20000)), 32), "no valid JSON needed")
}

// Walking a value allocates no more for a large value than for a small one
// (when its keys have no escapes): a request's memory is its body.
func TestValueAllocationsDoNotGrowWithTheValue(t *testing.T) {
	one := `{"a": [1, 2.5, "x", {"b": null, "c": [true, false]}], "d": "\u00e9"}`
	allocs := func(data []byte) float64 {
		return testing.AllocsPerRun(20, func() {
			s := jsonb.NewScanner(data)
			if _, err := s.Value(s.Next(), jsonb.Limits{UniqueKeys: true}); err != nil {
				t.Fatal(err)
			}
		})
	}
	small := allocs([]byte(one))
	large := allocs([]byte("[" + strings.Repeat(one+",", 10000) + one + "]"))
	require.LessOrEqual(t, large, small+1)
}
