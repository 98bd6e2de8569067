package verify

import (
	"strconv"
	"time"
)

// unixSeconds parses a signed timestamp in whole Unix seconds. Only
// digits are accepted: no sign, no spaces, no fraction.
func unixSeconds(s string) (time.Time, bool) {
	if len(s) > 18 || !isDigits(s) {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// unixSecondsOrMillis parses a Unix timestamp in seconds, or in
// milliseconds when it has 13 digits or more (a date after 2286 in
// seconds, so the two cannot be confused).
func unixSecondsOrMillis(s string) (time.Time, bool) {
	t, ok := unixSeconds(s)
	if ok && len(s) >= 13 {
		n, _ := strconv.ParseInt(s, 10, 64)
		return time.UnixMilli(n), true
	}
	return t, ok
}

// checkTime rejects a signed time more than w away from now, in either
// direction. A zero w means the check is off.
func checkTime(signed, now time.Time, w time.Duration) error {
	if w <= 0 {
		return nil
	}
	d := now.Sub(signed)
	switch {
	case d > w:
		return unauthorized(ReasonTimestampExpired)
	case d < -w:
		return unauthorized(ReasonTimestampInFuture)
	}
	return nil
}

// checkUnixTime checks a timestamp in Unix seconds against now, within w.
// With the check off (w zero) it is not even parsed.
func checkUnixTime(ts string, now time.Time, w time.Duration) error {
	if w <= 0 {
		return nil
	}
	signed, ok := unixSeconds(ts)
	if !ok {
		return malformed(ReasonTimestampMalformed)
	}
	return checkTime(signed, now, w)
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
