package gpu

// Collectives is implemented by backends that run a data-parallel job's
// tensor collectives on the device themselves (CUDA: NCCL). The job around
// them (rendezvous, liveness, host sums) is internal/dist's, which carries
// rank 0's NewCommID to every rank and calls OpenComm with it; a backend
// without Collectives gets dist's host exchange instead. It is a separate
// interface so that the model and trainer never see it and dist never
// sees a backend package.
type Collectives interface {
	// NewCommID makes the id of a new communicator, on rank 0 only.
	NewCommID() ([]byte, error)
	// OpenComm joins the communicator id names as rank of world ranks; it
	// returns once every rank has joined.
	OpenComm(id []byte, rank, world int) (DeviceComm, error)
}

// DeviceComm is one rank's communicator on its device. Every rank calls the
// same collectives in the same order with tensors of the same length; each
// works in the tensor's own storage and precision, queued on the device
// after the backend's work so far, without the host waiting for it. Ranges
// (bounds) are world+1 ascending element offsets into the flattened tensor,
// checked by the caller.
type DeviceComm interface {
	// AllReduce sums t over the ranks, in place.
	AllReduce(t *Tensor) error
	// Broadcast overwrites t on every rank with root's t.
	Broadcast(t *Tensor, root int) error
	// Reduce sums t over the ranks into root's t.
	Reduce(t *Tensor, root int) error
	// ReduceScatter leaves on each rank r the sum of its range r of t.
	ReduceScatter(t *Tensor, bounds []int) error
	// AllGather overwrites range r of t on every rank with rank r's.
	AllGather(t *Tensor, bounds []int) error
	// Issue runs f, queueing the collectives it makes on this communicator
	// on the communicator's own stream, after the work queued so far; join
	// makes the work queued after it wait for them (the host does not).
	Issue(f func() error) (join func() error, err error)
	// Drain waits until every queued collective has run.
	Drain() error
	// Close destroys the communicator; call it after Drain on every rank.
	Close() error
	// Abort tears the communicator down at once, from any goroutine: the
	// collectives waiting for a dead or stalled peer end (with an error),
	// so the device's queue drains.
	Abort()
}
