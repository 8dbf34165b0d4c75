#pragma once

// Learns a small CLIP vocabulary from captions, for a text encoder trained from scratch (the
// demo model's): byte-level BPE with "</w>" word ends, on the pieces ClipTokenizer cuts text
// into, written in the Hugging Face layout (vocab.json + merges.txt) that ClipTokenizer reads.
// Ids follow simple_tokenizer: the 512 byte tokens, one token per merge, then <|startoftext|>
// and <|endoftext|>.

#include <QString>
#include <QStringList>

#include <utility>
#include <vector>

namespace studio {

struct BpeVocabulary
{
    // In rank order: the first merge is applied first.
    std::vector<std::pair<QString, QString>> merges;
    // Every token in id order.
    std::vector<QString> tokens;
};

struct BpeOptions
{
    // At most this many merges; -1 merges until no counted pair is left (every word one token,
    // unless two words would need the same token made from different pairs).
    int maxMerges = -1;
    // A pair seen fewer times than this (word counts summed) is not merged.
    int minPairCount = 1;
};

// The merges learnt from the words of `texts`: repeatedly the most frequent adjacent pair (ties
// to the lexicographically first), never one whose result is already a token, so that every
// token has one id. Deterministic for the same texts in any order.
BpeVocabulary learnBpeVocabulary(const QStringList& texts, const BpeOptions& options = {});

// Writes `folder`/vocab.json and `folder`/merges.txt atomically, creating the folder. Throws
// studio::Error naming the file that could not be written.
void writeBpeVocabulary(const BpeVocabulary& vocabulary, const QString& folder);

} // namespace studio
