package engine

import (
	"sync"
	"time"
)

// meterBuckets and meterBucket make a moving window of five seconds.
const (
	meterBuckets = 10
	meterBucket  = 500 * time.Millisecond
)

// meter measures a byte rate over a moving window of a few seconds.
type meter struct {
	mu      sync.Mutex
	buckets [meterBuckets]int64
	stamp   [meterBuckets]int64 // which bucket number each slot holds
	start   time.Time
}

func (m *meter) slot(now time.Time) (idx int, num int64) {
	if m.start.IsZero() {
		m.start = now
	}
	num = int64(now.Sub(m.start) / meterBucket)
	return int(num % meterBuckets), num
}

// add records n bytes at now.
func (m *meter) add(now time.Time, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, num := m.slot(now)
	if m.stamp[i] != num {
		m.stamp[i], m.buckets[i] = num, 0
	}
	m.buckets[i] += n
}

// rate returns bytes per second over the window ending at now, or over the
// time since the first sample when that is shorter.
func (m *meter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.start.IsZero() {
		return 0
	}
	_, num := m.slot(now)
	var sum int64
	for i := range m.buckets {
		if num-m.stamp[i] < meterBuckets {
			sum += m.buckets[i]
		}
	}
	span := min(now.Sub(m.start), meterBuckets*meterBucket)
	if span < meterBucket {
		span = meterBucket
	}
	return float64(sum) / span.Seconds()
}
