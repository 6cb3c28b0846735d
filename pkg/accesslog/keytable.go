package accesslog

import "strings"

// keyTable maps access-log keys to (field, rank). Lookup indexes a small
// table by key length and first byte, then compares the few candidates:
// cheaper than hashing the whole key, and allocation-free for []byte keys.
type keyTable struct {
	index   [maxKeyLen + 1][128]uint16 // entry index + 1 of the first candidate; 0 = none
	entries []keyEntry
	long    []keyEntry // keys longer than maxKeyLen or starting with a non-ASCII byte
	all     [numFields][]string
}

const maxKeyLen = 31

type keyEntry struct {
	key   string
	field uint8
	rank  uint8  // position in the field's list + 1
	next  uint16 // entry index + 1 of the next candidate; 0 = none
}

func (t *keyTable) add(key string, field, rank uint8) {
	t.all[field] = append(t.all[field], key)
	e := keyEntry{key: key, field: field, rank: rank + 1}
	if len(key) == 0 || len(key) > maxKeyLen || key[0] >= 128 {
		t.long = append(t.long, e)
		return
	}
	slot := &t.index[len(key)][key[0]]
	e.next = *slot
	t.entries = append(t.entries, e)
	*slot = uint16(len(t.entries))
}

// lookup returns the field and rank (+1) of key, if mapped.
func (t *keyTable) lookup(key []byte) (field int, rank uint8, ok bool) {
	if n := len(key); n > 0 && n <= maxKeyLen && key[0] < 128 {
		for i := t.index[n][key[0]]; i != 0; {
			e := &t.entries[i-1]
			if e.key == string(key) {
				return int(e.field), e.rank, true
			}
			i = e.next
		}
		return 0, 0, false
	}
	for i := range t.long {
		if t.long[i].key == string(key) {
			return int(t.long[i].field), t.long[i].rank, true
		}
	}
	return 0, 0, false
}

// names lists a field's keys for error messages.
func (t *keyTable) names(field int) string { return strings.Join(t.all[field], ", ") }
