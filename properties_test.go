package lakebase

import "testing"

func TestIgnoredProperties_Listed(t *testing.T) {
	got := IgnoredProperties()
	if len(got) == 0 || got[0] > got[len(got)-1] {
		t.Fatalf("IgnoredProperties = %v", got)
	}
}
