package bench

import (
	"encoding/json"
	"testing"
)

// A payload of n bytes is n bytes of JSON, the same each time.
func TestPayloadIsJSONOfItsSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{MinPayloadBytes, 100, 4096, 65536, MaxPayloadBytes} {
		p := Payload(n)
		if len(p) != n || !json.Valid(p) {
			t.Fatalf("Payload(%d): %d bytes, valid JSON %v", n, len(p), json.Valid(p))
		}
		if string(Payload(n)) != string(p) {
			t.Fatalf("Payload(%d) differs between calls", n)
		}
	}
}
