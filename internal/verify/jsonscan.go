package verify

import (
	"encoding/json"
	"unicode/utf8"
)

// jsonScanner walks a JSON body in place for KeyFromJSON, allocating
// nothing. It is written here rather than taken from a library because its
// answers must be encoding/json's, and the fast JSON libraries (gjson,
// jsonparser, fastjson) give other ones: they either skip values without
// validating them or validate the whole body, and they compare keys before
// unescaping them or with a path syntax of their own. Here what precedes
// the field is held to encoding/json's grammar and nesting limit, what
// follows it is never read, and a key or string with escapes or invalid
// UTF-8 is decoded by encoding/json itself. FuzzKeyFromJSON checks it
// against the encoding/json Decoder.
type jsonScanner struct {
	data []byte
	pos  int
}

// maxNesting is encoding/json's limit on the depth of one value.
const maxNesting = 10000

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// peek skips white space and returns the next byte; false at the end.
func (s *jsonScanner) peek() (byte, bool) {
	for ; s.pos < len(s.data); s.pos++ {
		if c := s.data[s.pos]; !isSpace(c) {
			return c, true
		}
	}
	return 0, false
}

// expect skips white space and then c.
func (s *jsonScanner) expect(c byte) bool {
	if b, ok := s.peek(); ok && b == c {
		s.pos++
		return true
	}
	return false
}

// str moves past the string whose opening quote is at pos. It returns the
// string with its quotes, and whether the text between them is already its
// value (no escape, valid UTF-8), so that only other strings need decoding.
func (s *jsonScanner) str() (quoted []byte, plain, ok bool) {
	escaped, ascii := false, true
	for i := s.pos + 1; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			quoted = s.data[s.pos : i+1]
			s.pos = i + 1
			plain = !escaped && (ascii || utf8.Valid(quoted))
			return quoted, plain, true
		case c == '\\':
			escaped = true
			i++
			if i == len(s.data) {
				return nil, false, false
			}
			switch s.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s.data) || !isHex(s.data[i+1]) || !isHex(s.data[i+2]) || !isHex(s.data[i+3]) || !isHex(s.data[i+4]) {
					return nil, false, false
				}
				i += 4
			default:
				return nil, false, false
			}
		case c < ' ':
			return nil, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false, false
}

// decodeString gives the value of a string str returned, as encoding/json
// has it (an invalid UTF-8 byte or a lone surrogate becomes U+FFFD).
func decodeString(quoted []byte, plain bool) string {
	if plain {
		return string(quoted[1 : len(quoted)-1])
	}
	var v string
	if json.Unmarshal(quoted, &v) != nil {
		return ""
	}
	return v
}

// isKey reports whether the key str returned is seg once decoded.
func isKey(quoted []byte, plain bool, seg string) bool {
	if plain {
		return string(quoted[1:len(quoted)-1]) == seg
	}
	return decodeString(quoted, plain) == seg
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number moves past the number at pos as far as JSON's grammar takes it:
// in "01" that is "0", and what follows is the caller's to judge, as in
// encoding/json.
func (s *jsonScanner) number() bool {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = s.digits(i + 1)
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		if i++; i == len(d) || !isDigit(d[i]) {
			return false
		}
		i = s.digits(i)
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i == len(d) || !isDigit(d[i]) {
			return false
		}
		i = s.digits(i)
	}
	s.pos = i
	return true
}

// digits returns the index of the first byte from i that is not a digit.
func (s *jsonScanner) digits(i int) int {
	for i < len(s.data) && isDigit(s.data[i]) {
		i++
	}
	return i
}

// literal moves past word (true, false or null) if it is at pos.
func (s *jsonScanner) literal(word string) bool {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return false
	}
	s.pos += len(word)
	return true
}

// scalar moves past the string, number or literal starting with c at pos.
func (s *jsonScanner) scalar(c byte) bool {
	switch {
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == '-' || isDigit(c):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// key moves past an object's key and the colon after it.
func (s *jsonScanner) key() bool {
	if c, ok := s.peek(); !ok || c != '"' {
		return false
	}
	_, _, ok := s.str()
	return ok && s.expect(':')
}

// skipValue moves past one value, which must be valid JSON nested at most
// maxNesting deep; what follows it is left to the caller.
func (s *jsonScanner) skipValue() bool {
	// The closing bracket of each open object or array, innermost last; a
	// body nested deeper than this array allocates.
	var first [64]byte
	open := first[:0]
value:
	for {
		c, ok := s.peek()
		if !ok {
			return false
		}
		switch c {
		case '{', '[':
			s.pos++
			if len(open) == maxNesting {
				return false
			}
			end := byte(']')
			if c == '{' {
				end = '}'
			}
			if s.expect(end) {
				break
			}
			open = append(open, end)
			if end == '}' && !s.key() {
				return false
			}
			continue value
		default:
			if !s.scalar(c) {
				return false
			}
		}
		// After a value: close the arrays and objects that end here,
		// until a comma starts the next value.
		for len(open) > 0 {
			c, ok := s.peek()
			if !ok {
				return false
			}
			s.pos++
			end := open[len(open)-1]
			switch c {
			case ',':
				if end == '}' && !s.key() {
					return false
				}
				continue value
			case end:
				open = open[:len(open)-1]
			default:
				return false
			}
		}
		return true
	}
}
