package devbroker

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Crash recovery of the data directory.
//
// kfake writes every record batch to its partition's segment file as it is
// produced, and ends a transaction by writing one control batch (the
// commit or abort marker) to each partition the transaction touched, one
// partition after the other. A process killed between two of those writes
// leaves a transaction committed on some partitions and without a marker on
// the others. At load, kfake treats a transaction without a marker as
// aborted, in memory only: the commit is torn (state records gone, the
// same transaction's tasks and completions kept), and since no abort marker
// is ever written, read_committed clients, which skip a producer's batches
// from an aborted transaction's first offset until they meet its abort
// marker, also skip the transactions the same producer commits after the
// restart.
//
// recoverDataDir runs before kfake loads the directory and gives every
// transaction that has no marker on a partition the marker it should have
// had: a commit when its marker is a commit on any other partition (the
// coordinator had decided to commit), else an abort. Afterwards every
// transaction has one outcome on every partition, and the abort is on disk
// for clients to see. A transaction is named by its producer id and epoch:
// kfake speaks Kafka 4 transactions (KIP-890), which bump the epoch at
// every commit or abort.

// persistVersion is the kfake data directory format this file reads
// (meta.json "version"); another version is left alone, with a warning.
const persistVersion = 1

// Sizes and flags of kfake's on-disk format: segment files (N.dat) hold
// record batches in Kafka's wire format, index files (N.idx) one 15-byte
// entry per batch.
const (
	indexEntrySize   = 15
	attrTransaction  = 0x10
	attrControl      = 0x20
	batchHeaderBytes = 12 // first offset (8) and length (4)
	batchCRCFrom     = 21 // the CRC covers the batch from its attributes on
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Repair is one marker written by recoverDataDir.
type Repair struct {
	Topic      string
	Partition  int32
	ProducerID int64
	Epoch      int16
	Commit     bool  // a commit marker (else an abort)
	Offset     int64 // the marker's offset
}

func (r Repair) String() string {
	outcome := "abort"
	if r.Commit {
		outcome = "commit"
	}
	return fmt.Sprintf("%s-%d: %s marker at offset %d for producer %d epoch %d", r.Topic, r.Partition, outcome, r.Offset, r.ProducerID, r.Epoch)
}

// txnID names one transaction.
type txnID struct {
	pid   int64
	epoch int16
}

// openTxn is a transaction with batches on a partition and no marker yet.
type openTxn struct {
	firstTS int64 // timestamp of its first batch there, ms
}

// partLog is what recoverDataDir reads of one partition.
type partLog struct {
	dir, topic string
	partition  int32
	lastBase   int64  // base offset of the last segment (its file name)
	segValid   int64  // bytes of whole batches in the last segment
	inTx       []bool // of each whole batch in the last segment: transactional data
	next       int64  // offset the next batch gets
	epoch      int32  // leader epoch of the last batch
	open       map[txnID]openTxn
}

// recoverDataDir writes the missing markers of dir (see above) and returns
// them. A directory kfake has not written yet is left alone.
func recoverDataDir(dir string) ([]Repair, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var meta struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("stepwise: %s: %w", filepath.Join(dir, "meta.json"), err)
	}
	if meta.Version != persistVersion {
		return nil, fmt.Errorf("%w: data directory format %d, this build repairs format %d", errUnknownFormat, meta.Version, persistVersion)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "partitions"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var logs []*partLog
	commits := map[txnID]int64{} // latest commit marker timestamp of each transaction
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		l, err := readPartLog(filepath.Join(dir, "partitions", e.Name()), commits)
		if err != nil {
			return nil, err
		}
		if l != nil {
			logs = append(logs, l)
		}
	}
	var repairs []Repair
	for _, l := range logs {
		for _, id := range slices.SortedFunc(maps.Keys(l.open), func(a, b txnID) int { return cmp.Compare(a.pid, b.pid) }) {
			// The commit must be this transaction's: written after
			// its first batch here.
			ts, ok := commits[id]
			commit := ok && ts >= l.open[id].firstTS
			off, err := l.appendMarker(id, commit)
			if err != nil {
				return repairs, err
			}
			repairs = append(repairs, Repair{Topic: l.topic, Partition: l.partition, ProducerID: id.pid, Epoch: id.epoch, Commit: commit, Offset: off})
		}
	}
	return repairs, nil
}

var errUnknownFormat = errors.New("stepwise: dev broker data not checked for torn transactions")

// readPartLog reads the segments of the partition in pdir (named
// <url-escaped topic>-<partition>), adds the commit markers it holds to
// commits and returns the partition's open transactions and where its log
// ends. It stops at the first incomplete or corrupt batch, as kfake does.
func readPartLog(pdir string, commits map[txnID]int64) (*partLog, error) {
	name := filepath.Base(pdir)
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return nil, nil
	}
	part, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil {
		return nil, nil
	}
	topic, err := url.PathUnescape(name[:i])
	if err != nil {
		return nil, nil
	}
	files, err := os.ReadDir(pdir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, f := range files {
		if b, ok := strings.CutSuffix(f.Name(), ".dat"); ok {
			if n, err := strconv.ParseInt(b, 10, 64); err == nil {
				bases = append(bases, n)
			}
		}
	}
	if len(bases) == 0 {
		return nil, nil
	}
	slices.Sort(bases)
	l := &partLog{dir: pdir, topic: topic, partition: int32(part), open: map[txnID]openTxn{}}
	for _, base := range bases {
		raw, err := os.ReadFile(filepath.Join(pdir, strconv.FormatInt(base, 10)+".dat"))
		if err != nil {
			return nil, err
		}
		l.lastBase, l.segValid, l.inTx = base, 0, nil
		for pos := 0; pos+batchHeaderBytes <= len(raw); {
			size := batchHeaderBytes + int(binary.BigEndian.Uint32(raw[pos+8:pos+12]))
			if size < batchCRCFrom || pos+size > len(raw) {
				break
			}
			b := raw[pos : pos+size]
			if binary.BigEndian.Uint32(b[17:21]) != crc32.Checksum(b[batchCRCFrom:], crc32c) {
				break
			}
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				break
			}
			l.note(&rb, commits)
			pos += size
			l.segValid = int64(pos)
			l.inTx = append(l.inTx, rb.Attributes&(attrTransaction|attrControl) == attrTransaction)
			l.next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
			l.epoch = rb.PartitionLeaderEpoch
		}
	}
	return l, nil
}

// note follows the transactions of one batch.
func (l *partLog) note(rb *kmsg.RecordBatch, commits map[txnID]int64) {
	if rb.Attributes&attrTransaction == 0 {
		return
	}
	id := txnID{rb.ProducerID, rb.ProducerEpoch}
	if rb.Attributes&attrControl == 0 {
		if _, ok := l.open[id]; !ok {
			l.open[id] = openTxn{firstTS: rb.FirstTimestamp}
		}
		return
	}
	// A marker ends the producer's transaction on this partition,
	// whatever its epoch (an abort by a newer epoch ends an older one).
	for o := range l.open {
		if o.pid == rb.ProducerID {
			delete(l.open, o)
		}
	}
	var rec kmsg.Record
	if rec.ReadFrom(rb.Records) == nil && len(rec.Key) >= 4 && binary.BigEndian.Uint16(rec.Key[2:4]) == uint16(kmsg.ControlRecordKeyTypeCommit) {
		commits[id] = max(commits[id], rb.MaxTimestamp)
	}
}

// appendMarker writes a commit or abort marker of id at the end of the
// partition's last segment, with its index entry, and syncs both files.
// Bytes past the last whole batch (a write cut by the crash) and index
// entries past the last batch are dropped first, as kfake would at load;
// index entries the crash cut off are written again from the batches.
func (l *partLog) appendMarker(id txnID, commit bool) (int64, error) {
	base := filepath.Join(l.dir, strconv.FormatInt(l.lastBase, 10))
	seg, err := os.OpenFile(base+".dat", os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer seg.Close()
	idx, err := os.OpenFile(base+".idx", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer idx.Close()
	fi, err := idx.Stat()
	if err != nil {
		return 0, err
	}
	// kfake takes a batch's transaction flag from its index entry: an
	// entry lost with the crash would make an aborted batch visible.
	have := min(fi.Size()/indexEntrySize, int64(len(l.inTx)))
	if err := errors.Join(seg.Truncate(l.segValid), idx.Truncate(have*indexEntrySize)); err != nil {
		return 0, err
	}
	var entries []byte
	for _, inTx := range l.inTx[have:] {
		e := indexEntry(l.epoch, inTx)
		entries = append(entries, e[:]...)
	}
	off := l.next
	batch := markerBatch(id, commit, off, l.epoch)
	e := indexEntry(l.epoch, false)
	entries = append(entries, e[:]...)
	if _, err := seg.WriteAt(batch, l.segValid); err != nil {
		return 0, err
	}
	if _, err := idx.WriteAt(entries, have*indexEntrySize); err != nil {
		return 0, err
	}
	if err := errors.Join(seg.Sync(), idx.Sync()); err != nil {
		return 0, err
	}
	l.segValid += int64(len(batch))
	l.inTx = append(l.inTx, false)
	l.next++
	return off, nil
}

// markerBatch encodes the control batch that ends transaction id on a
// partition at offset off: what the transaction coordinator writes.
func markerBatch(id txnID, commit bool, off int64, leaderEpoch int32) []byte {
	key := kmsg.ControlRecordKey{Type: kmsg.ControlRecordKeyTypeAbort}
	if commit {
		key.Type = kmsg.ControlRecordKeyTypeCommit
	}
	marker := kmsg.EndTxnMarker{}
	rec := kmsg.Record{Key: key.AppendTo(nil), Value: marker.AppendTo(nil)}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // the length's own varint is one byte here
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{
		FirstOffset:          off,
		PartitionLeaderEpoch: leaderEpoch,
		Magic:                2,
		Attributes:           attrControl | attrTransaction,
		FirstTimestamp:       now,
		MaxTimestamp:         now,
		ProducerID:           id.pid,
		ProducerEpoch:        id.epoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              rec.AppendTo(nil),
	}
	enc := b.AppendTo(nil)
	binary.BigEndian.PutUint32(enc[8:12], uint32(len(enc)-batchHeaderBytes))
	binary.BigEndian.PutUint32(enc[17:21], crc32.Checksum(enc[batchCRCFrom:], crc32c))
	return enc
}

// indexEntry encodes kfake's index entry of a batch: format version, a
// check byte, the leader epoch, the largest earlier timestamp (recomputed
// by kfake at load) and the in-transaction flag.
func indexEntry(epoch int32, inTx bool) [indexEntrySize]byte {
	var e [indexEntrySize]byte
	e[0] = persistVersion
	binary.LittleEndian.PutUint32(e[2:6], uint32(epoch))
	if inTx {
		e[14] = 1
	}
	e[1] = byte(crc32.Checksum(e[2:], crc32c))
	return e
}
