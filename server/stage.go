package server

// stage is a step of a publication's way through its loop, timed in
// builds with the stagetrace tag (stages.go): the bytes handed to the
// loop, the pub decoded, published (seq given, inboxes filled), taken to
// the outboxes, the subscriber's write begun and done, the ack written.
type stage uint8

const (
	stRead stage = iota
	stDecoded
	stPublished
	stDeliver
	stWrite
	stWritten
	stAcked
	nStages
)
