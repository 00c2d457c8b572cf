package dist

import (
	"errors"
	"fmt"
	"sync"
)

// InProcess runs the n ranks of one job as goroutines of this process, rank
// r with local rank r, meeting at a free port on 127.0.0.1, and waits for
// all of them. The error joins every failed rank's, each naming its rank.
// Tests run data-parallel jobs with it without starting processes.
func InProcess(n int, rank func(Env) error) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	return eachRank(n, func(r int) error {
		return rank(Env{Rank: r, World: n, LocalRank: r, Addr: "127.0.0.1", Port: port})
	})
}

// eachRank runs f(0) ... f(n-1) concurrently and waits for all of them.
func eachRank(n int, f func(r int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(r); err != nil {
				errs[r] = fmt.Errorf("rank %d of %d: %w", r, n, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
