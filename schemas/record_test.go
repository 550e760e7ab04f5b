package schemas

import (
	"testing"
	"time"
)

func TestAppendTimeMatchesRFC3339Nano(t *testing.T) {
	base := time.Date(2026, 11, 25, 9, 5, 7, 0, time.UTC)
	for _, tm := range []time.Time{
		base, base.Add(time.Nanosecond), base.Add(120 * time.Millisecond), base.Add(123456789),
		base.Add(100), time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		base.In(time.FixedZone("x", 3600)),
	} {
		if got, want := string(appendTime(nil, tm)), tm.Format(time.RFC3339Nano); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
