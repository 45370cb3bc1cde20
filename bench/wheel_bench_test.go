package bench

import (
	"runtime"
	"testing"
	"time"

	"github.com/RussellLuo/timingwheel"

	"github.com/tickfan/tickfan/wheel"
)

// liveTimers is how many timers wait while the benchmarks add and stop one:
// about what a node with a million connections keeps armed.
const liveTimers = 1_000_000

func nop() {}

// deadline spreads the live timers over 1 to 60 seconds, like idle and
// heartbeat deadlines.
func deadline(i int) time.Duration { return time.Second + time.Duration(i%59_000)*time.Millisecond }

// heapAfterGC returns the live heap, in bytes.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkTimerAddStop arms one timer and stops it, with a million others
// live, for tickfan's wheel, github.com/RussellLuo/timingwheel and
// time.AfterFunc. B/timer is the heap each live timer costs.
func BenchmarkTimerAddStop(b *testing.B) {
	b.Run("impl=tickfan", func(b *testing.B) {
		w := wheel.New(wheel.Config{})
		defer w.Close()
		base := heapAfterGC()
		live := make([]wheel.Timer, liveTimers)
		for i := range live {
			live[i].Init(nop)
			w.Add(&live[i], deadline(i))
		}
		perTimer := float64(heapAfterGC()-base) / liveTimers
		var t wheel.Timer
		t.Init(nop)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			w.Add(&t, deadline(i))
			w.Stop(&t)
		}
		b.StopTimer()
		b.ReportMetric(perTimer, "B/timer")
		runtime.KeepAlive(live)
	})
	b.Run("impl=timingwheel", func(b *testing.B) {
		tw := timingwheel.NewTimingWheel(10*time.Millisecond, 4096)
		tw.Start()
		defer tw.Stop()
		base := heapAfterGC()
		live := make([]*timingwheel.Timer, liveTimers)
		for i := range live {
			live[i] = tw.AfterFunc(deadline(i), nop)
		}
		perTimer := float64(heapAfterGC()-base) / liveTimers
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			tw.AfterFunc(deadline(i), nop).Stop()
		}
		b.StopTimer()
		b.ReportMetric(perTimer, "B/timer")
		for _, t := range live {
			t.Stop()
		}
	})
	b.Run("impl=time.AfterFunc", func(b *testing.B) {
		base := heapAfterGC()
		live := make([]*time.Timer, liveTimers)
		for i := range live {
			live[i] = time.AfterFunc(deadline(i), nop)
		}
		perTimer := float64(heapAfterGC()-base) / liveTimers
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			time.AfterFunc(deadline(i), nop).Stop()
		}
		b.StopTimer()
		b.ReportMetric(perTimer, "B/timer")
		for _, t := range live {
			t.Stop()
		}
	})
}
