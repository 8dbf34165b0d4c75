#pragma once

// The CLIP BPE tokenizer of Stable Diffusion's text encoders: openai/CLIP `simple_tokenizer.py`
// (SD1 through Hugging Face's CLIPTokenizer, SD2 through open_clip), id for id. The vocabulary
// comes from the original `bpe_simple_vocab_16e6.txt[.gz]` or from the Hugging Face layout
// (`vocab.json` + `merges.txt`); both describe the same 49408 tokens. A smaller vocabulary in
// the Hugging Face layout (such as the demo model's, core/text/BpeVocabularyBuilder.h) loads
// when its two files agree: 512 byte tokens, one per merge, then the start and end tokens.
//
// Text goes through the original cleanup (HTML unescaping, whitespace collapsing, Python's
// lower-casing), the original regular expression, byte-level symbols and BPE merges. ftfy is
// not reproduced: it is the identity for text without mojibake, curly quotes, ligatures,
// full-width forms or control characters, which is what the reference checks.
//
// Copies share the vocabulary and the cache; all const members may be called from any thread.

#include <QString>

#include <memory>
#include <vector>

namespace studio {

class ClipTokenizer
{
public:
    // The ids of CLIP's own vocabulary; startOfTextId() and friends give a loaded one's.
    static constexpr int kStartOfText = 49406;
    static constexpr int kEndOfText = 49407;
    static constexpr int kVocabularySize = 49408;
    static constexpr int kContextLength = 77;
    // Context minus the start and end tokens.
    static constexpr int kMaxTextTokens = kContextLength - 2;

    // `path`: a bpe_simple_vocab_16e6.txt or .txt.gz file; a vocab.json or merges.txt with its
    // partner in the same folder; or a folder holding one of those (or a `tokenizer/` folder
    // that does). Throws studio::Error naming the file and what is wrong with it.
    explicit ClipTokenizer(const QString& path);

    // The vocabulary to use for a model, searched in this order: `configuredPath` (the
    // settings; when set it must hold a vocabulary), next to `checkpointPath` (or inside it
    // when it is a diffusers folder), in a `tokenizer/` folder there, then in the Hugging Face
    // cache (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface). Returns a path the constructor
    // accepts; throws studio::Error listing the places searched and where to put a vocabulary.
    static QString locate(const QString& checkpointPath = QString(),
                          const QString& configuredPath = QString());

    // BPE ids of `text` without start and end tokens (SimpleTokenizer.encode).
    std::vector<int> encode(const QString& text) const;

    // The 77 ids of plain CLIP tokenization: start, at most 75 ids of encode(text), end, then
    // `padId` (SD1 / Hugging Face: the end token, which -1 stands for; SD2 / open_clip: 0).
    std::vector<int> tokenize77(const QString& text, int padId = -1) const;

    // SimpleTokenizer.decode: the text of `ids`, each "</w>" becoming a space.
    QString decode(const std::vector<int>& ids) const;

    // The vocabulary string of `id` ("cat</w>", byte-level alphabet); empty when out of range.
    QString tokenString(int id) const;
    // The id of a vocabulary string, or -1.
    int tokenId(const QString& tokenString) const;
    int vocabularySize() const;
    // <|startoftext|> and <|endoftext|>: the last two ids (kStartOfText and kEndOfText for
    // CLIP's own vocabulary).
    int startOfTextId() const;
    int endOfTextId() const;
    // The file the vocabulary was read from.
    QString sourcePath() const;

    // openai/CLIP and open_clip (SD2) unescape HTML entities ("&amp;") twice before tokenizing;
    // Hugging Face's CLIPTokenizer, which webui uses for SD1, does not. On by default.
    void setUnescapeHtml(bool enabled) { m_unescapeHtml = enabled; }
    bool unescapeHtml() const { return m_unescapeHtml; }

    // What a vocabulary is built from, so that a new one (BpeVocabularyBuilder) splits text
    // exactly as this class does. The regex pieces of `text` after CLIP's cleanup, special
    // tokens included:
    static QStringList pieces(const QString& text, bool unescapeHtml = true);
    // The byte-level symbols of `bytes` (bytes_to_unicode), one QChar per byte.
    static QString byteSymbols(const QByteArray& bytes);
    // Ids 0 to 511 of every CLIP vocabulary: the 256 byte symbols, then each with "</w>".
    static std::vector<QString> byteTokens();

private:
    struct Vocabulary;
    struct Cache;

    std::vector<int> bpe(const QString& piece) const;
    std::vector<int> mergeSymbols(std::vector<int> word) const;

    std::shared_ptr<const Vocabulary> m_vocabulary;
    std::shared_ptr<Cache> m_cache;
    bool m_unescapeHtml = true;
};

} // namespace studio
