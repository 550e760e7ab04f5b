package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// session is the bridge's connection to RabbitMQ: one channel in confirm
// mode for publishing tasks, one consuming the reply queue. run keeps it
// connected, reconnecting with backoff; each connection is a generation,
// and lost(gen) is closed when that generation's connection ends, so that
// tasks published on it can be published again.
//
// Invariant: mu.pub is nil exactly while mu.ready is open (not connected).
type session struct {
	url        string
	vhost      string // "": the URL's
	replyQueue string
	prefetch   int
	backoff    backoff
	log        *slog.Logger
	stats      *Stats
	onReply    func(amqp.Delivery)

	mu struct {
		sync.Mutex
		pub      *amqp.Channel
		gen      uint64
		ready    chan struct{}   // closed while connected
		lost     chan struct{}   // closed when generation gen ends
		declared map[string]bool // task queues declared on this connection
	}
}

// replyQueueExpiry is how long an unused reply queue (of a replica that
// is gone) lives before RabbitMQ deletes it.
const replyQueueExpiry = time.Hour

func newSession(url, vhost, replyQueue string, prefetch int, b backoff, log *slog.Logger, stats *Stats, onReply func(amqp.Delivery)) *session {
	if vhost != "" {
		log = log.With(slog.String(logVHost, vhost))
	}
	s := &session{url: url, vhost: vhost, replyQueue: replyQueue, prefetch: prefetch, backoff: b, log: log, stats: stats, onReply: onReply}
	s.mu.ready = make(chan struct{})
	return s
}

// run connects and serves until ctx ends.
func (s *session) run(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		closed, err := s.connect()
		if err != nil {
			wait := s.backoff.wait(attempt)
			s.log.Warn("cannot reach RabbitMQ; retrying", slog.String(logError, err.Error()), slog.Duration(logWait, wait))
			sleep(ctx, wait)
			continue
		}
		attempt = -1
		select {
		case <-ctx.Done():
		case err := <-closed:
			msg := "connection closed"
			if err != nil {
				msg = err.Error()
			}
			s.log.Warn("lost RabbitMQ; reconnecting, then publishing again the tasks still waiting", slog.String(logError, msg))
		}
		s.disconnect()
		if ctx.Err() == nil {
			s.stats.Reconnects.Add(1)
		}
	}
}

// connect opens a connection, its channels and the reply consumer, and
// marks the session ready. closed reports the end of the connection or of
// either channel.
func (s *session) connect() (closed <-chan *amqp.Error, err error) {
	conn, err := amqp.DialConfig(s.url, amqp.Config{Vhost: s.vhost, Properties: amqp.Table{"connection_name": "stepwise bridge " + s.replyQueue}})
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (<-chan *amqp.Error, error) {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return fail("open publish channel", err)
	}
	if err := pub.Confirm(false); err != nil {
		return fail("confirm mode", err)
	}
	sub, err := conn.Channel()
	if err != nil {
		return fail("open reply channel", err)
	}
	// Durable and shared by nobody else: replies survive a restart of
	// RabbitMQ and of this replica (under the same replica id).
	if _, err := sub.QueueDeclare(s.replyQueue, true, false, false, false, amqp.Table{"x-expires": int64(replyQueueExpiry / time.Millisecond)}); err != nil {
		return fail("declare reply queue "+s.replyQueue, err)
	}
	if err := sub.Qos(s.prefetch, 0, false); err != nil {
		return fail("reply prefetch", err)
	}
	deliveries, err := sub.Consume(s.replyQueue, "", false, false, false, false, nil)
	if err != nil {
		return fail("consume reply queue "+s.replyQueue, err)
	}
	done := make(chan *amqp.Error, 3)
	forward := func(ch chan *amqp.Error) {
		if e, ok := <-ch; ok {
			done <- e
		} else {
			done <- nil
		}
	}
	go forward(conn.NotifyClose(make(chan *amqp.Error, 1)))
	go forward(pub.NotifyClose(make(chan *amqp.Error, 1)))
	go forward(sub.NotifyClose(make(chan *amqp.Error, 1)))
	go func() {
		for d := range deliveries {
			s.onReply(d)
		}
	}()

	s.mu.Lock()
	s.mu.pub = pub
	s.mu.gen++
	s.mu.lost = make(chan struct{})
	s.mu.declared = map[string]bool{}
	close(s.mu.ready)
	gen := s.mu.gen
	s.mu.Unlock()
	s.log.Info("connected to RabbitMQ", slog.String(logReplyQueue, s.replyQueue), slog.Uint64(logGeneration, gen))
	go func() {
		<-done
		conn.Close() // ends the other channel too
	}()
	return done, nil
}

func (s *session) disconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pub == nil {
		return
	}
	_ = s.mu.pub.Close()
	s.mu.pub = nil
	s.mu.ready = make(chan struct{})
	close(s.mu.lost)
}

// errNotConfirmed is returned when RabbitMQ nacked a publish.
var errNotConfirmed = errors.New("stepwise bridge: RabbitMQ did not confirm the publish")

// ready reports nil while connected.
func (s *session) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pub == nil {
		return errors.New("not connected to RabbitMQ")
	}
	return nil
}

// publish sends a task to queue and waits for its confirm, retrying (with
// backoff, across reconnects) until it is confirmed or ctx ends. It
// returns the channel closed when the connection that carried it ends.
func (s *session) publish(ctx context.Context, queue, correlationID string, body []byte) (lost <-chan struct{}, err error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, s.backoff.wait(attempt-1)); err != nil {
				return nil, err
			}
		}
		s.mu.Lock()
		ready := s.mu.ready
		s.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
		pub, lost, declared := s.mu.pub, s.mu.lost, s.mu.declared[queue]
		s.mu.Unlock()
		if pub == nil {
			continue // lost again in between
		}
		if !declared {
			// As the original workers declare it: durable, no other
			// arguments. Publishing to a queue nobody declared would be
			// confirmed and dropped.
			if _, err := pub.QueueDeclare(queue, true, false, false, false, nil); err != nil {
				s.log.Error("cannot declare task queue (declared with other settings?)", slog.String(logQueue, queue), slog.String(logError, err.Error()))
				continue
			}
			s.mu.Lock()
			if s.mu.pub == pub {
				s.mu.declared[queue] = true
			}
			s.mu.Unlock()
		}
		conf, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, amqp.Publishing{
			ContentType:   "application/json",
			DeliveryMode:  amqp.Persistent,
			CorrelationId: correlationID,
			ReplyTo:       s.replyQueue,
			Body:          body,
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue // the channel is closing; run reconnects
		}
		acked, err := conf.WaitContext(ctx)
		if err != nil {
			return nil, err
		}
		if acked {
			return lost, nil
		}
		s.log.Warn("publish not confirmed; publishing again", slog.String(logQueue, queue), slog.String(logCorrelation, correlationID))
		s.stats.Unconfirmed.Add(1)
	}
}

// backoff is an exponential backoff with jitter.
type backoff struct{ min, max time.Duration }

func (b backoff) wait(attempt int) time.Duration {
	d := b.min
	for range min(attempt, 30) {
		d *= 2
		if d >= b.max {
			d = b.max
			break
		}
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
