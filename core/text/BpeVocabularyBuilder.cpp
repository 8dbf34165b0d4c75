// BPE learning as in Sennrich et al. and the tokenizers that CLIP's vocabulary came from: words
// counted once, symbols merged pair by pair, each merge applied left to right without overlap,
// which is how ClipTokenizer applies it again, so a learnt word tokenizes as it was learnt.

#include "core/text/BpeVocabularyBuilder.h"

#include "core/Error.h"
#include "core/io/AtomicFile.h"
#include "core/text/ClipTokenizer.h"

#include <QDir>
#include <QJsonArray>
#include <QJsonDocument>

#include <map>
#include <set>

namespace studio {

namespace {

const QString kStartText = QStringLiteral("<|startoftext|>");
const QString kEndText = QStringLiteral("<|endoftext|>");
const QString kEndOfWord = QStringLiteral("</w>");

using Pair = std::pair<QString, QString>;

struct Word
{
    std::vector<QString> symbols;
    qint64 count = 0;
};

// Each distinct piece once, as byte symbols with "</w>" on the last, with its count.
std::vector<Word> countWords(const QStringList& texts)
{
    std::map<QString, qint64> counts;
    for (const QString& text : texts) {
        for (const QString& piece : ClipTokenizer::pieces(text)) {
            if (piece != kStartText && piece != kEndText) {
                ++counts[piece];
            }
        }
    }
    std::vector<Word> words;
    for (const auto& [piece, count] : counts) {
        Word word{{}, count};
        for (const QChar symbol : ClipTokenizer::byteSymbols(piece.toUtf8())) {
            word.symbols.emplace_back(symbol);
        }
        word.symbols.back() += kEndOfWord;
        words.push_back(std::move(word));
    }
    return words;
}

std::map<Pair, qint64> countPairs(const std::vector<Word>& words)
{
    std::map<Pair, qint64> pairs;
    for (const Word& word : words) {
        for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
            pairs[{word.symbols[i], word.symbols[i + 1]}] += word.count;
        }
    }
    return pairs;
}

// The most frequent pair that makes a new token; the map's order breaks ties. Null first when
// there is none with at least `minCount`.
const Pair* bestPair(const std::map<Pair, qint64>& pairs, const std::set<QString>& tokens,
                     qint64 minCount)
{
    const Pair* best = nullptr;
    qint64 bestCount = minCount - 1;
    for (const auto& [pair, count] : pairs) {
        if (count > bestCount && tokens.count(pair.first + pair.second) == 0) {
            best = &pair;
            bestCount = count;
        }
    }
    return best;
}

void applyMerge(std::vector<Word>& words, const Pair& pair)
{
    for (Word& word : words) {
        std::vector<QString> merged;
        merged.reserve(word.symbols.size());
        for (size_t i = 0; i < word.symbols.size(); ++i) {
            const bool matches = i + 1 < word.symbols.size() && word.symbols[i] == pair.first &&
                                 word.symbols[i + 1] == pair.second;
            merged.push_back(matches ? pair.first + pair.second : word.symbols[i]);
            i += matches ? 1 : 0;
        }
        word.symbols = std::move(merged);
    }
}

// A JSON string literal, quotes included.
QByteArray jsonString(const QString& text)
{
    const QByteArray array = QJsonDocument(QJsonArray{text}).toJson(QJsonDocument::Compact);
    return array.mid(1, array.size() - 2);
}

// Hugging Face writes vocab.json in id order; QJsonObject would sort the keys.
QByteArray vocabJson(const std::vector<QString>& tokens)
{
    QByteArray json = "{";
    for (size_t id = 0; id < tokens.size(); ++id) {
        json +=
            (id == 0 ? "" : ",") + jsonString(tokens[id]) + ':' + QByteArray::number(qint64(id));
    }
    return json + "}\n";
}

QByteArray mergesText(const std::vector<Pair>& merges)
{
    QByteArray text = "#version: 0.2\n";
    for (const auto& [left, right] : merges) {
        text += left.toUtf8() + ' ' + right.toUtf8() + '\n';
    }
    return text;
}

} // namespace

BpeVocabulary learnBpeVocabulary(const QStringList& texts, const BpeOptions& options)
{
    BpeVocabulary vocabulary;
    vocabulary.tokens = ClipTokenizer::byteTokens();
    std::set<QString> known(vocabulary.tokens.begin(), vocabulary.tokens.end());
    known.insert({kStartText, kEndText});

    std::vector<Word> words = countWords(texts);
    while (options.maxMerges < 0 || int(vocabulary.merges.size()) < options.maxMerges) {
        const std::map<Pair, qint64> pairs = countPairs(words);
        const Pair* pair = bestPair(pairs, known, std::max(options.minPairCount, 1));
        if (pair == nullptr) {
            break;
        }
        vocabulary.merges.push_back(*pair);
        vocabulary.tokens.push_back(pair->first + pair->second);
        known.insert(vocabulary.tokens.back());
        applyMerge(words, *pair);
    }
    vocabulary.tokens.push_back(kStartText);
    vocabulary.tokens.push_back(kEndText);
    return vocabulary;
}

void writeBpeVocabulary(const BpeVocabulary& vocabulary, const QString& folder)
{
    if (!QDir().mkpath(folder)) {
        throw Error(QStringLiteral("cannot create the vocabulary folder '%1'; check that its "
                                   "parent exists and is writable")
                        .arg(QDir::toNativeSeparators(folder)));
    }
    const QDir dir(folder);
    io::writeFileAtomically(dir.filePath(QStringLiteral("vocab.json")),
                            vocabJson(vocabulary.tokens));
    io::writeFileAtomically(dir.filePath(QStringLiteral("merges.txt")),
                            mergesText(vocabulary.merges));
}

} // namespace studio
