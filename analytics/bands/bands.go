// Package bands is the channel band's arithmetic (seed 000, "Outliers
// Detection"): a per-channel snapshot of its newest videos' view curves by
// age, updated each week with that week's samples instead of recomputed
// from the full history, the expected band (25th–75th percentile and
// median at each age, like YouTube Studio's "typical performance") and the
// judgement of a video against it. No I/O: the tracker's weekly job loads
// and stores snapshots (object storage) and the samples (ClickHouse).
package bands

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

const (
	// Videos is how many of a channel's newest videos make its band (the
	// seed: "at least the last 10-20").
	Videos = 20
	// MinVideos is how many videos a band needs at an age before a video
	// is judged against it: a median of two is no expectation.
	MinVideos = 5
	// OutlierScore is the views ÷ band median at the same age from which a
	// video is an outlier (1of10's "2x"), provided it is also above the
	// band's upper edge.
	OutlierScore = 2.0

	hourlyAges = 7 * 24 // whole hours in the first week (hourly samples)
	// Ages is the number of age buckets: hours 0–167, then days 7–59.
	Ages = hourlyAges + 60 - 7
	// MaxAge is how long a video is followed: the tracker samples it daily
	// up to 60 days.
	MaxAge = 60 * 24 * time.Hour
)

// Age is the bucket of a sample at since the video's first sample: whole
// hours in the first week, whole days after, so videos sampled at
// different minutes meet at the same age; false beyond MaxAge or before
// first.
func Age(first, at time.Time) (int, bool) {
	d := at.Sub(first)
	switch {
	case d < 0 || d >= MaxAge:
		return 0, false
	case d < 7*24*time.Hour:
		return int(d / time.Hour), true
	default:
		return hourlyAges + int(d/(24*time.Hour)) - 7, true
	}
}

// AgeHours is an age bucket's age in hours (a day bucket counts from its
// start), as the pages and channel_bands show it.
func AgeHours(age int) uint32 {
	if age < hourlyAges {
		return uint32(age)
	}
	return uint32((age - hourlyAges + 7) * 24)
}

// Sample is one reading of a video's views.
type Sample struct {
	At    time.Time
	Views uint64
}

// Curve is one video's views by age bucket; Has marks the buckets sampled.
type Curve struct {
	Video string
	First time.Time // its first sample: age 0
	Views [Ages]uint64
	Has   [Ages]bool
}

// Snapshot is a channel's band state: the curves of its Videos newest
// videos and the first sample of every other video younger than MaxAge
// (to judge them, they stay out of the band).
type Snapshot struct {
	Channel string
	Through time.Time // the end of the latest week merged
	Curves  []Curve   // newest first, at most Videos
	Older   map[string]time.Time
}

// First returns when video was first sampled, if the snapshot knows it.
func (s *Snapshot) First(video string) (time.Time, bool) {
	for _, c := range s.Curves {
		if c.Video == video {
			return c.First, true
		}
	}
	t, ok := s.Older[video]
	return t, ok
}

// Merge adds a week's samples (through is the week's end) to the snapshot.
// firsts gives each video's first sample; a video not in firsts must be
// known to the snapshot (its samples are dropped otherwise). A bucket keeps
// the highest views seen at that age, so merging the same samples again,
// or duplicates of a sample, changes nothing: the weekly job can be
// replayed.
func (s *Snapshot) Merge(through time.Time, firsts map[string]time.Time, samples map[string][]Sample) {
	if through.After(s.Through) {
		s.Through = through
	}
	if s.Older == nil {
		s.Older = map[string]time.Time{}
	}
	byVideo := map[string]*Curve{}
	for i := range s.Curves {
		byVideo[s.Curves[i].Video] = &s.Curves[i]
	}
	// Bring back older videos that now have samples: they may rank among
	// the newest once pruned again below (a backfill, a first merge).
	for vid := range samples {
		if _, ok := byVideo[vid]; ok {
			continue
		}
		first, ok := firsts[vid]
		if !ok {
			first, ok = s.Older[vid]
		}
		if !ok {
			continue
		}
		s.Curves = append(s.Curves, Curve{Video: vid, First: first})
		delete(s.Older, vid)
	}
	for i := range s.Curves {
		c := &s.Curves[i]
		if f, ok := firsts[c.Video]; ok && f.Before(c.First) {
			c.First = f // an earlier sample came to light: ages move
			c.Views, c.Has = [Ages]uint64{}, [Ages]bool{}
		}
		byVideo[c.Video] = c
	}
	for vid, ss := range samples {
		c := byVideo[vid]
		if c == nil {
			continue
		}
		for _, x := range ss {
			if a, ok := Age(c.First, x.At); ok && (!c.Has[a] || x.Views > c.Views[a]) {
				c.Views[a], c.Has[a] = x.Views, true
			}
		}
	}
	s.prune()
}

// prune keeps the Videos newest curves, turns the rest into Older entries
// and forgets videos past MaxAge.
func (s *Snapshot) prune() {
	slices.SortFunc(s.Curves, func(a, b Curve) int {
		if c := b.First.Compare(a.First); c != 0 {
			return c
		}
		return strings.Compare(a.Video, b.Video)
	})
	if len(s.Curves) > Videos {
		for _, c := range s.Curves[Videos:] {
			s.Older[c.Video] = c.First
		}
		s.Curves = slices.Clone(s.Curves[:Videos])
	}
	for vid, first := range s.Older {
		if s.Through.Sub(first) >= MaxAge {
			delete(s.Older, vid)
		}
	}
}

// Point is the band at one age.
type Point struct {
	Age           int
	Videos        int
	P25, P50, P75 float64
}

// Band is the expected band at every age some curve has a sample at,
// youngest first: quantiles over the curves' views at that age,
// interpolated between neighbours.
func (s *Snapshot) Band() []Point {
	var out []Point
	vals := make([]float64, 0, Videos)
	for a := range Ages {
		vals = vals[:0]
		for i := range s.Curves {
			if s.Curves[i].Has[a] {
				vals = append(vals, float64(s.Curves[i].Views[a]))
			}
		}
		if len(vals) == 0 {
			continue
		}
		sort.Float64s(vals)
		out = append(out, Point{Age: a, Videos: len(vals), P25: quantile(vals, 0.25), P50: quantile(vals, 0.5), P75: quantile(vals, 0.75)})
	}
	return out
}

// quantile of sorted vals, linear between the closest ranks.
func quantile(vals []float64, q float64) float64 {
	pos := q * float64(len(vals)-1)
	lo := int(math.Floor(pos))
	if lo+1 >= len(vals) {
		return vals[len(vals)-1]
	}
	return vals[lo] + (pos-float64(lo))*(vals[lo+1]-vals[lo])
}

// Judge scores views at a video's age against the band: the score (views ÷
// median) and whether it makes the video an outlier. A band too thin at
// that age judges nothing.
func Judge(band []Point, age int, views uint64) (p Point, score float64, outlier bool) {
	i, found := slices.BinarySearchFunc(band, age, func(p Point, age int) int { return p.Age - age })
	if !found {
		return Point{}, 0, false
	}
	p = band[i]
	if p.Videos < MinVideos || p.P50 <= 0 {
		return p, 0, false
	}
	score = float64(views) / p.P50
	return p, score, score >= OutlierScore && float64(views) > p.P75
}

// snapshotVersion leads the encoding, so a format change is detected.
const snapshotVersion = 1

// Encode writes the snapshot compactly: varints, each curve's sampled
// buckets as gaps and view deltas (curves only grow, so deltas are small).
func (s *Snapshot) Encode() []byte {
	b := []byte{snapshotVersion}
	b = appendString(b, s.Channel)
	b = binary.AppendVarint(b, s.Through.Unix())
	b = binary.AppendUvarint(b, uint64(len(s.Curves)))
	for i := range s.Curves {
		c := &s.Curves[i]
		b = appendString(b, c.Video)
		b = binary.AppendVarint(b, c.First.Unix())
		n := 0
		for _, h := range c.Has {
			if h {
				n++
			}
		}
		b = binary.AppendUvarint(b, uint64(n))
		last, prev := -1, int64(0)
		for a := range Ages {
			if !c.Has[a] {
				continue
			}
			b = binary.AppendUvarint(b, uint64(a-last))
			b = binary.AppendVarint(b, int64(c.Views[a])-prev)
			last, prev = a, int64(c.Views[a])
		}
	}
	older := make([]string, 0, len(s.Older))
	for vid := range s.Older {
		older = append(older, vid)
	}
	slices.Sort(older)
	b = binary.AppendUvarint(b, uint64(len(older)))
	for _, vid := range older {
		b = appendString(b, vid)
		b = binary.AppendVarint(b, s.Older[vid].Unix())
	}
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// Decode reads what Encode wrote.
func Decode(b []byte) (Snapshot, error) {
	r := reader{b: b}
	if v := r.byte(); v != snapshotVersion {
		return Snapshot{}, fmt.Errorf("band snapshot: version %d, want %d", v, snapshotVersion)
	}
	s := Snapshot{Channel: r.string(), Through: time.Unix(r.varint(), 0).UTC(), Older: map[string]time.Time{}}
	n := r.uvarint()
	if n > Videos {
		return Snapshot{}, fmt.Errorf("band snapshot: %d curves, at most %d", n, Videos)
	}
	for range n {
		c := Curve{Video: r.string(), First: time.Unix(r.varint(), 0).UTC()}
		points := r.uvarint()
		if points > Ages {
			return Snapshot{}, errors.New("band snapshot: corrupt curve")
		}
		a, prev := -1, int64(0)
		for range points {
			a += int(r.uvarint())
			prev += r.varint()
			if a < 0 || a >= Ages || prev < 0 {
				return Snapshot{}, errors.New("band snapshot: corrupt curve")
			}
			c.Views[a], c.Has[a] = uint64(prev), true
		}
		s.Curves = append(s.Curves, c)
	}
	older := r.uvarint()
	if older > uint64(len(r.b)) {
		return Snapshot{}, errors.New("band snapshot: corrupt list of older videos")
	}
	for range older {
		vid := r.string()
		s.Older[vid] = time.Unix(r.varint(), 0).UTC()
	}
	if r.err != nil {
		return Snapshot{}, fmt.Errorf("band snapshot: %w", r.err)
	}
	return s, nil
}

type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errShort, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = errShort, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = errShort, nil
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
