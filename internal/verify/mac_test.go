package verify

import (
	"crypto/sha256"
	"testing"
)

func TestAnySignature(t *testing.T) {
	sum := func(k []byte) []byte { return mac(sha256.New, k, []byte("body")) }
	old, current, other := []byte("old"), []byte("current"), []byte("other")
	tests := []struct {
		name string
		keys [][]byte
		sigs [][]byte
		want bool
	}{
		{"the only key, the only signature", [][]byte{current}, [][]byte{sum(current)}, true},
		{"the second secret (rotation on our side)", [][]byte{old, current}, [][]byte{sum(current)}, true},
		{"the second signature (rotation on the sender's)", [][]byte{current}, [][]byte{[]byte("junk"), sum(current)}, true},
		{"a signature under an unknown key", [][]byte{old, current}, [][]byte{sum(other)}, false},
		{"no signature", [][]byte{current}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := anySignature(tt.keys, tt.sigs, sum); got != tt.want {
				t.Errorf("anySignature = %v, want %v", got, tt.want)
			}
		})
	}
}
