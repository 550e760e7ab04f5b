package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stepwise-run/stepwise/internal/logkey"
)

// ErrTooLarge: a start would make a record larger than the requests topic
// takes. The message names the sizes.
var ErrTooLarge = errors.New("stepwise: start too large")

// producerBatchMax is the client's produce batch limit (franz-go's
// default, set explicitly so the two cannot drift): no record above it can
// be sent, whatever the topic allows.
const producerBatchMax = 1_000_012

// recordOverhead bounds what a record batch of one record adds around its
// key and value (batch header, record framing, the partition's varints).
const recordOverhead = 128

// recordLimit returns the largest record (key and value) a start may make:
// the requests topic's max.message.bytes, or the client's batch limit when
// that is lower, less the batch framing. The topic's setting is read once;
// when it cannot be read (no permission to describe configs), the batch
// limit alone applies and the broker has the last word.
func (c *Client) recordLimit(ctx context.Context) (limit int, topicMax int) {
	c.limit.mu.Lock()
	defer c.limit.mu.Unlock()
	if c.limit.topicMax == 0 && time.Since(c.limit.tried) > limitRetry {
		c.limit.tried = time.Now()
		c.limit.topicMax = c.describeMaxMessageBytes(ctx)
	}
	limit = producerBatchMax
	if m := c.limit.topicMax; m > 0 && m < limit {
		limit = m
	}
	return limit - recordOverhead, c.limit.topicMax
}

// limitRetry is how long a failed read of max.message.bytes is trusted
// before it is tried again.
const limitRetry = time.Minute

func (c *Client) describeMaxMessageBytes(ctx context.Context) int {
	topic := c.cfg.prefix.Requests()
	rcs, err := c.adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		c.cfg.logger.Warn("cannot read the requests topic's max.message.bytes; only the client's limit applies", "topic", topic, logkey.Error, err)
		return 0
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		c.cfg.logger.Warn("cannot read the requests topic's max.message.bytes; only the client's limit applies", "topic", topic, logkey.Error, err)
		return 0
	}
	for _, cfg := range rc.Configs {
		if cfg.Key == "max.message.bytes" {
			n, err := strconv.Atoi(cfg.MaybeValue())
			if err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// checkSize returns an error wrapping ErrTooLarge when a start record of
// key and value, whose input is input bytes long, is above the limit.
func (c *Client) checkSize(ctx context.Context, key string, value []byte, input int) error {
	limit, topicMax := c.recordLimit(ctx)
	size := len(key) + len(value)
	if size <= limit {
		return nil
	}
	maxInput := limit - (size - input)
	why := fmt.Sprintf("the client's %d-byte batch limit", producerBatchMax)
	if topicMax > 0 && topicMax < producerBatchMax {
		why = fmt.Sprintf("the %d bytes of max.message.bytes of topic %s", topicMax, c.cfg.prefix.Requests())
	}
	return fmt.Errorf("%w: an input of %d bytes is over the %d-byte limit (%s, less the start's envelope)", ErrTooLarge, input, max(maxInput, 0), why)
}
