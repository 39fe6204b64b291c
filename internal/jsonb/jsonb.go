// Package jsonb knows what PostgreSQL's jsonb type can store, and walks JSON
// token by token without decoding it. encoding/json accepts text that jsonb
// refuses (\u0000, unpaired surrogate escapes, numbers beyond numeric's
// range, invalid UTF-8), and a statement that meets such text fails as a
// whole; checking first turns that into a clear error about one value.
package jsonb

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// Reasons a JSON value cannot be stored, or is refused, as jsonb.
var (
	ErrSyntax       = errors.New("not valid JSON")
	ErrUTF8         = errors.New("not valid UTF-8")
	ErrNUL          = errors.New(`strings must not contain \u0000 (PostgreSQL cannot store it)`)
	ErrSurrogate    = errors.New("unpaired UTF-16 surrogate escape")
	ErrNumber       = errors.New("number is outside PostgreSQL's numeric range (131072 digits before the point, 16383 after)")
	ErrDuplicateKey = errors.New("key appears twice")
	ErrTooLarge     = errors.New("value is too large")
	// ErrExpands is a value within its cap as sent that is over it once
	// PostgreSQL writes its numbers out in full: jsonb stores 1e131071 in
	// a few bytes and writes it as 131,072 digits on every read.
	ErrExpands = errors.New("value is too large once its numbers are written out in full")
)

// Error is a reason (one of the Err values) found at Path within a value:
// "a.b[2]", or "" for the value itself.
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Under returns the path of e below prefix, the way Path writes it.
func (e *Error) Under(prefix string) string {
	switch {
	case prefix == "":
		return e.Path
	case e.Path == "", strings.HasPrefix(e.Path, "["):
		return prefix + e.Path
	}
	return prefix + "." + e.Path
}

// Check reports whether data is one JSON value that jsonb can store, within
// maxBytes as Limits.MaxBytes counts them (0: no cap), and if not, why and
// where.
func Check(data []byte, maxBytes int) error {
	if !utf8.Valid(data) {
		return &Error{Err: ErrUTF8}
	}
	if !json.Valid(data) {
		return &Error{Err: ErrSyntax}
	}
	s := NewScanner(data)
	_, err := s.Value(s.Next(), Limits{MaxBytes: maxBytes})
	return err
}

// Limits are stricter rules than jsonb's for Scanner.Value.
type Limits struct {
	// MaxBytes caps the value's length as written, and as PostgreSQL will
	// write it: with each number counted at its length in full (1e400 as
	// 401 digits; see Rendered); 0 means no cap. The walk stops at the first
	// token past it, with ErrTooLarge or ErrExpands.
	MaxBytes int
	// UniqueKeys refuses an object with a key twice (jsonb keeps the last).
	UniqueKeys bool
}

// A Scanner walks JSON that json.Valid accepted, one token at a time,
// without decoding or allocating. Given anything else its tokens are
// meaningless, though it never reads out of bounds.
type Scanner struct {
	data  []byte
	pos   int
	keys  [][]byte // keys of the objects being walked, for Limits.UniqueKeys
	grown int      // how much longer the value's numbers are written out in full, for Limits.MaxBytes
}

// NewScanner returns a Scanner at the start of data.
func NewScanner(data []byte) *Scanner { return &Scanner{data: data} }

// Token is one token of JSON text.
type Token struct {
	// Kind is the token's first byte: '{', '}', '[', ']', '"' for a string,
	// 't', 'f' or 'n' for the literals, '-' or a digit for a number, and 0
	// at the end of the text.
	Kind byte
	// Raw is the token as written (a string with its quotes).
	Raw []byte
	// Offset is where the token starts.
	Offset int
}

// IsNumber reports whether t is a number.
func (t Token) IsNumber() bool { return t.Kind == '-' || t.Kind >= '0' && t.Kind <= '9' }

// Next returns the next token, passing over whitespace, ':' and ','.
func (s *Scanner) Next() Token {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r', ':', ',':
			s.pos++
			continue
		}
		break
	}
	if s.pos >= len(s.data) {
		return Token{Offset: len(s.data)}
	}
	start := s.pos
	switch s.data[start] {
	case '{', '}', '[', ']':
		s.pos++
	case '"':
		s.pos++
		for s.pos < len(s.data) && s.data[s.pos] != '"' {
			if s.data[s.pos] == '\\' {
				s.pos++
			}
			s.pos++
		}
		s.pos = min(s.pos+1, len(s.data))
	default: // a number or a literal: runs to the next delimiter
		for s.pos < len(s.data) && !delimiter(s.data[s.pos]) {
			s.pos++
		}
	}
	return Token{Kind: s.data[start], Raw: s.data[start:s.pos], Offset: start}
}

func delimiter(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', ']', '}':
		return true
	}
	return false
}

// Value walks the value that begins with t, checking every string and
// number in it against jsonb and lim, and returns its bytes as written.
func (s *Scanner) Value(t Token, lim Limits) ([]byte, error) {
	s.grown = 0
	if err := s.value(t, t.Offset, lim); err != nil {
		return nil, err
	}
	return s.data[t.Offset:s.pos], nil
}

func (s *Scanner) value(t Token, start int, lim Limits) *Error {
	if err := s.over(start, lim); err != nil {
		return err
	}
	switch {
	case t.Kind == '"':
		if err := String(t.Raw); err != nil {
			return &Error{Err: err}
		}
	case t.IsNumber():
		n, err := Rendered(t.Raw)
		if err != nil {
			return &Error{Err: err}
		}
		s.grown += max(0, n-len(t.Raw))
		if err := s.over(start, lim); err != nil {
			return err
		}
	case t.Kind == '[':
		for i := 0; ; i++ {
			e := s.Next()
			if e.Kind == ']' || e.Kind == 0 {
				return nil
			}
			if err := s.value(e, start, lim); err != nil {
				err.Path = "[" + itoa(i) + "]" + dotted(err.Path)
				return err
			}
		}
	case t.Kind == '{':
		base := len(s.keys)
		var set map[string]struct{}
		defer func() { s.keys = s.keys[:base] }()
		for {
			k := s.Next()
			if k.Kind != '"' {
				return nil
			}
			name := Unquote(k.Raw)
			if err := String(k.Raw); err != nil {
				return &Error{Path: string(name), Err: err}
			}
			if lim.UniqueKeys && s.seen(base, name, &set) {
				return &Error{Path: string(name), Err: ErrDuplicateKey}
			}
			if err := s.value(s.Next(), start, lim); err != nil {
				err.Path = string(name) + dotted(err.Path)
				return err
			}
		}
	}
	return nil
}

// over reports whether the value that starts at start is past lim.MaxBytes
// so far: as written, or with its numbers written out in full.
func (s *Scanner) over(start int, lim Limits) *Error {
	switch {
	case lim.MaxBytes <= 0:
		return nil
	case s.pos-start > lim.MaxBytes:
		return &Error{Err: ErrTooLarge}
	case s.pos-start+s.grown > lim.MaxBytes:
		return &Error{Err: ErrExpands}
	}
	return nil
}

// seen records key among the keys of the object whose keys start at base,
// and reports whether it was there already. Small objects compare in place;
// past 32 keys an object's keys move into a set, so that many keys cost no
// more than a few each.
func (s *Scanner) seen(base int, key []byte, set *map[string]struct{}) bool {
	if *set == nil && len(s.keys)-base < 32 {
		for _, k := range s.keys[base:] {
			if string(k) == string(key) {
				return true
			}
		}
		s.keys = append(s.keys, key)
		return false
	}
	if *set == nil {
		*set = make(map[string]struct{}, 64)
		for _, k := range s.keys[base:] {
			(*set)[string(k)] = struct{}{}
		}
	}
	if _, dup := (*set)[string(key)]; dup {
		return true
	}
	(*set)[string(key)] = struct{}{}
	return false
}

// dotted joins a path below a key: "b" becomes ".b", "[2]" stays.
func dotted(path string) string {
	if path == "" || path[0] == '[' {
		return path
	}
	return "." + path
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}

// Unquote returns the text of a string token: its bytes between the quotes
// when it has no escapes (no allocation), else its decoded text.
func Unquote(raw []byte) []byte {
	inner := raw[1 : len(raw)-1]
	if !containsByte(inner, '\\') {
		return inner
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return inner
	}
	return []byte(s)
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// String checks a string token (with its quotes) for the escapes jsonb
// refuses: \u0000, and UTF-16 surrogates that are not a high one followed
// by a low one.
func String(raw []byte) error {
	for i := 1; i < len(raw)-1; i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' || i+4 >= len(raw) {
			continue
		}
		v := hex4(raw[i+1 : i+5])
		i += 4
		switch {
		case v == 0:
			return ErrNUL
		case v >= 0xDC00 && v <= 0xDFFF:
			return ErrSurrogate
		case v >= 0xD800 && v <= 0xDBFF:
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if w := hex4(raw[i+3 : i+7]); w >= 0xDC00 && w <= 0xDFFF {
					i += 6
					continue
				}
			}
			return ErrSurrogate
		}
	}
	return nil
}

func hex4(b []byte) rune {
	var v rune
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			v |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v |= rune(c - 'A' + 10)
		}
	}
	return v
}

// PostgreSQL's numeric limits (src/backend/utils/adt/numeric.c): a weight of
// at most 32767 base-10000 digits, a display scale of at most 16383, and an
// exponent below INT_MAX/2 in magnitude.
const (
	maxIntegerDigits = 131072
	maxScale         = 16383
	maxExponent      = 1<<31/2 - 1
)

// Number checks a number token against PostgreSQL's numeric range, which
// jsonb stores numbers in: 1e131072 and 1e-16384 are valid JSON that jsonb
// refuses.
func Number(raw []byte) error {
	_, err := Rendered(raw)
	return err
}

// Rendered checks a number token as Number does and returns the length of
// the text PostgreSQL writes for it (numeric_out: every digit, no exponent):
// 1e400 is written as 401 digits, 1e-5 as "0.00001", 1.50 as "1.50".
func Rendered(raw []byte) (int, error) {
	s := raw
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	i := digits(s, 0)
	intPart := s[:i]
	var frac []byte
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		frac, i = s[i+1:j], j
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		e := s[i+1:]
		negExp := len(e) > 0 && e[0] == '-'
		if len(e) > 0 && (e[0] == '-' || e[0] == '+') {
			e = e[1:]
		}
		for len(e) > 0 && e[0] == '0' {
			e = e[1:]
		}
		if len(e) > 10 {
			return 0, ErrNumber
		}
		for _, c := range e {
			exp = exp*10 + int(c-'0')
		}
		if exp >= maxExponent {
			return 0, ErrNumber
		}
		if negExp {
			exp = -exp
		}
	}
	// The display scale: how many digits follow the point.
	scale := max(0, len(frac)-exp)
	if scale > maxScale {
		return 0, ErrNumber
	}
	n := 1 // the integer part: "0" unless the first non-zero digit is at 10^0 or above
	if p, nonzero := power(intPart, frac, exp); nonzero {
		if p >= maxIntegerDigits {
			return 0, ErrNumber
		}
		n = max(1, p+1)
		if neg {
			n++ // PostgreSQL drops the sign of a zero
		}
	}
	if scale > 0 {
		n += 1 + scale
	}
	return n, nil
}

// power returns the power of ten of the first non-zero digit of a number
// written as intPart.frac × 10^exp, and false when the number is zero.
func power(intPart, frac []byte, exp int) (int, bool) {
	for k, c := range intPart {
		if c != '0' {
			return len(intPart) - 1 - k + exp, true
		}
	}
	for k, c := range frac {
		if c != '0' {
			return -1 - k + exp, true
		}
	}
	return 0, false
}

func digits(s []byte, i int) int {
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// ArrayLen reports whether data, valid JSON, is an array, and how many
// elements it has (walking it, without decoding them).
func ArrayLen(data []byte) (int, bool) {
	s := NewScanner(data)
	if t := s.Next(); t.Kind != '[' {
		return 0, false
	}
	n := 0
	for e := s.Next(); e.Kind != ']' && e.Kind != 0; e = s.Next() {
		if _, err := s.Value(e, Limits{}); err != nil {
			return 0, false
		}
		n++
	}
	return n, true
}

// TooDeep reports whether JSON text nests arrays and objects more than limit
// levels deep. It needs no valid JSON, so it can run before json.Valid,
// which gives up at 10,000 levels with a less helpful error.
func TooDeep(data []byte, limit int) bool {
	depth, inString := 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > limit {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}
