package train

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/compact-llm/compact/internal/checkpoint"
)

// runSummary collects what the end-of-run summary reports.
type runSummary struct {
	began       time.Time
	startStep   int
	startTokens int64
	loss        float64  // last logged training loss
	valLoss     *float64 // last validation loss
	valAcc      *float64
}

func (s *runSummary) observe(m Metric) {
	s.loss = m.Loss
	if m.ValLoss != nil {
		s.valLoss = m.ValLoss
	}
	if m.ValAcc != nil {
		s.valAcc = m.ValAcc
	}
}

// eta extrapolates the time per step of this invocation to the steps left.
func (s *runSummary) eta(now time.Time, step, total int) time.Duration {
	done := step - s.startStep
	if done <= 0 {
		return 0
	}
	eta := float64(now.Sub(s.began)) / float64(done) * float64(total-step)
	if eta >= math.MaxInt64 { // --steps 9223372036854775807: beyond what a Duration holds
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(eta)
}

// report is the last line of a finished run.
func (s *runSummary) report(st checkpoint.TrainerState, peak int64, ckpt string) string {
	el := time.Since(s.began)
	tokens := st.Tokens - s.startTokens
	var b strings.Builder
	// A run the guard warned about does not end with a plain "done".
	verb := "done"
	if st.Health != nil && len(st.Health.Events) > 0 {
		verb = fmt.Sprintf("finished with %d training-health warning(s), see above", len(st.Health.Events))
	}
	fmt.Fprintf(&b, "%s: %d steps (%d..%d), %d tokens in %s (%.0f tok/s); final loss %.4f",
		verb, st.Step-s.startStep, s.startStep+1, st.Step, tokens, shortDuration(el), float64(tokens)/el.Seconds(), s.loss)
	if s.valLoss != nil {
		fmt.Fprintf(&b, ", val_loss %.4f", *s.valLoss)
	}
	if s.valAcc != nil {
		fmt.Fprintf(&b, ", val_accuracy %.4f", *s.valAcc)
	}
	fmt.Fprintf(&b, "; peak memory %s", FormatBytes(peak))
	if ckpt != "" {
		fmt.Fprintf(&b, "; checkpoint %s", ckpt)
	}
	return b.String()
}

// shortDuration rounds d for humans: 850ms, 42s, 3m07s, 1h02m.
func shortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d < 365*24*time.Hour:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	case d < 100*365*24*time.Hour:
		return fmt.Sprintf("%.1fy", d.Hours()/24/365)
	}
	return "over 100y"
}

// FormatBytes picks the unit that fits: 512 B, 3.2 KiB, 45.1 MiB, 7.80 GiB.
func FormatBytes(n int64) string {
	v := float64(n)
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", v/(1<<30))
}
