"""An independent model of foldmoe's GPT dataset semantics (docs/data.md), written from the
documentation: data read by megatron-core's IndexedDataset, splits by megatron-core's split parser,
sample windows by megatron-core's build_sample_idx over the epoch's document order, blends by
megatron-core's build_blending_indices; only the keyed shuffles (docs/data.md "Shuffling") are
written out here."""
import numpy

import megatron_core as mc

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
SPLITS = {"train": 0, "valid": 1, "test": 2}


def mix64(z):
    z = (z + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def shuffle_key(seed, split, epoch, purpose):
    return mix64(mix64(mix64(mix64(seed) ^ split) ^ epoch) ^ purpose)


def permutation(n, key):
    p = list(range(n))
    state = key
    for i in range(n - 1, 0, -1):
        m = i + 1
        threshold = (1 << 64) % m
        while True:
            r = mix64(state)
            state = (state + GOLDEN) & MASK
            if r >= threshold:
                break
        j = r % m
        p[i], p[j] = p[j], p[i]
    return p


class GptSplit:
    """One split of one dataset."""

    def __init__(self, prefix, split, which, seq_len, seed):
        self.ds = mc.IndexedDataset(prefix)
        self.sizes = numpy.asarray(self.ds.sequence_lengths, dtype=numpy.int32)
        bookends = mc.convert_split_vector_to_split_matrix(mc.parse_and_normalize_split(split))[SPLITS[which]]
        n = len(self.sizes)
        self.begin, self.end = (0, 0) if bookends is None else (int(round(bookends[0] * n)),
                                                               int(round(bookends[1] * n)))
        self.split, self.seq_len, self.seed = SPLITS[which], seq_len, seed
        self.tokens = int(self.sizes[self.begin:self.end].sum())
        self.samples_per_epoch = (self.tokens - 1) // seq_len if self.tokens > 1 else 0
        self._epochs = {}

    def _epoch(self, e):
        if e not in self._epochs:
            docs = self.end - self.begin
            order = numpy.array([self.begin + p for p in permutation(docs, shuffle_key(self.seed, self.split, e, 1))],
                                dtype=numpy.int32)
            sample_idx = mc.helpers.build_sample_idx(self.sizes, order, self.seq_len, 1, self.tokens, True, True)
            assert len(sample_idx) == self.samples_per_epoch + 1, (len(sample_idx), self.samples_per_epoch)
            shuffle = permutation(self.samples_per_epoch, shuffle_key(self.seed, self.split, e, 2))
            self._epochs[e] = (order, sample_idx, shuffle)
        return self._epochs[e]

    def sample(self, j):
        e, k = divmod(j, self.samples_per_epoch)
        order, sample_idx, shuffle = self._epoch(e)
        p = shuffle[k]
        (d0, o0), (d1, o1) = sample_idx[p], sample_idx[p + 1]
        # As Megatron's GPTDataset assembles a sample: from (d0, o0) through offset o1 of d1.
        if d0 == d1:
            parts = [self.ds[int(order[d0])][o0:o1 + 1]]
        else:
            parts = [self.ds[int(order[d0])][o0:]] + [self.ds[int(order[d])] for d in range(d0 + 1, d1)]
            parts.append(self.ds[int(order[d1])][:o1 + 1])
        return [int(t) for t in numpy.concatenate(parts)]


class GptBlend:
    def __init__(self, prefixes, weights, split, which, seq_len, seed):
        self.parts = [GptSplit(p, split, which, seq_len, seed) for p in prefixes]
        if len(self.parts) > 1 and not weights:
            weights = [p.samples_per_epoch for p in self.parts]
        w = numpy.array(weights or [1.0], dtype=numpy.float64)
        self.weights = w / w.sum()
        self.samples_per_epoch = sum(p.samples_per_epoch for p in self.parts)

    def locate(self, count):
        if len(self.parts) == 1:
            return [(0, i) for i in range(count)]
        dataset_index = numpy.zeros(count, dtype=numpy.int16)
        dataset_sample_index = numpy.zeros(count, dtype=numpy.int64)
        mc.helpers.build_blending_indices(dataset_index, dataset_sample_index, self.weights, len(self.parts), count,
                                          False)
        return list(zip(dataset_index.tolist(), dataset_sample_index.tolist()))

    def samples(self, count):
        return [self.parts[d].sample(j) for d, j in self.locate(count)]
