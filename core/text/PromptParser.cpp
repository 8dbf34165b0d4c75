// webui's parse_prompt_attention and tokenize_line. The prompt is scanned as Unicode code points
// because the original regular expressions run on Python str: `\s` is str.isspace(), `\d` any
// Unicode decimal digit, `\b` a boundary of str.isalnum() or '_' characters.

#include "core/text/PromptParser.h"

#include "core/Error.h"
#include "core/text/ClipTokenizer.h"

#include <algorithm>
#include <string>

namespace studio {

namespace {

constexpr double kRoundMultiplier = 1.1;
constexpr double kSquareMultiplier = 1 / 1.1;
constexpr double kBreakWeight = -1.0;
const std::u32string kBreakWord = U"BREAK";

bool isPythonSpace(char32_t c)
{
    const QChar::Direction direction = QChar::direction(c);
    return QChar::category(c) == QChar::Separator_Space || direction == QChar::DirWS ||
           direction == QChar::DirB || direction == QChar::DirS;
}

bool isPythonDigit(char32_t c)
{
    return QChar::category(c) == QChar::Number_DecimalDigit;
}

bool isPythonWordCharacter(char32_t c)
{
    return c == U'_' || QChar::isLetterOrNumber(c);
}

// One alternative of webui's re_attention, matched at a position.
struct AttentionToken
{
    enum class Kind
    {
        Escape,
        OpenRound,
        OpenSquare,
        Weight,
        CloseRound,
        CloseSquare,
        Text,
    };

    Kind kind;
    size_t length;
    std::u32string weight; // the number of a Weight token
};

bool isBracket(char32_t c)
{
    return c == U'(' || c == U')' || c == U'[' || c == U']';
}

// The characters that end a text run.
bool isSpecial(char32_t c)
{
    return c == U'\\' || c == U':' || isBracket(c);
}

size_t skipSpaces(const std::u32string& text, size_t position)
{
    while (position < text.size() && isPythonSpace(text[position])) {
        ++position;
    }
    return position;
}

// `:\s*([+-]?[.\d]+)\s*\)` at `start`, else the lone ':' (text).
AttentionToken matchWeight(const std::u32string& text, size_t start)
{
    const AttentionToken colon{AttentionToken::Kind::Text, 1, {}};
    size_t position = skipSpaces(text, start + 1);
    const size_t numberStart = position;
    if (position < text.size() && (text[position] == U'+' || text[position] == U'-')) {
        ++position;
    }
    const size_t digitsStart = position;
    while (position < text.size() && (text[position] == U'.' || isPythonDigit(text[position]))) {
        ++position;
    }
    if (position == digitsStart) {
        return colon;
    }
    const size_t numberEnd = position;
    position = skipSpaces(text, position);
    if (position >= text.size() || text[position] != U')') {
        return colon;
    }
    return {AttentionToken::Kind::Weight, position + 1 - start,
            text.substr(numberStart, numberEnd - numberStart)};
}

// re_attention's alternatives in their order; the first that matches wins.
AttentionToken matchAttentionToken(const std::u32string& text, size_t start)
{
    using Kind = AttentionToken::Kind;
    const char32_t c = text[start];
    if (c == U'\\') {
        // \( \) \[ \] and \\ escape one character; a lone backslash stands for nothing.
        const bool escapes =
            start + 1 < text.size() && (isBracket(text[start + 1]) || text[start + 1] == U'\\');
        return {Kind::Escape, escapes ? size_t(2) : size_t(1), {}};
    }
    switch (c) {
    case U'(':
        return {Kind::OpenRound, 1, {}};
    case U'[':
        return {Kind::OpenSquare, 1, {}};
    case U':':
        return matchWeight(text, start);
    case U')':
        return {Kind::CloseRound, 1, {}};
    case U']':
        return {Kind::CloseSquare, 1, {}};
    default:
        break;
    }
    size_t end = start;
    while (end < text.size() && !isSpecial(text[end])) {
        ++end;
    }
    return {Kind::Text, end - start, {}};
}

// Python's float() on what `[+-]?[.\d]+` matched: one optional dot, at least one digit.
double parseWeight(const std::u32string& number, const std::u32string& token)
{
    QString ascii;
    int dots = 0;
    int digits = 0;
    for (char32_t c : number) {
        if (c == U'+' || c == U'-') {
            ascii += QChar(char16_t(c));
        } else if (c == U'.') {
            ++dots;
            ascii += QLatin1Char('.');
        } else {
            ++digits;
            ascii += QChar(char16_t(u'0' + QChar::digitValue(c)));
        }
    }
    bool ok = dots <= 1 && digits > 0;
    const double value = ok ? ascii.toDouble(&ok) : 0.0;
    if (!ok) {
        throw Error(QStringLiteral("the prompt weight '%1' in '%2' is not a number; write weights "
                                   "like (word:1.2)")
                        .arg(QString::fromStdU32String(number), QString::fromStdU32String(token)));
    }
    return value;
}

// The leftmost match of `\s*\bBREAK\b\s*` at or after `from`, as [start, end).
bool findBreak(const std::u32string& text, size_t from, size_t& start, size_t& end)
{
    for (size_t candidate = from; candidate < text.size(); ++candidate) {
        const size_t word = skipSpaces(text, candidate);
        if (text.compare(word, kBreakWord.size(), kBreakWord) != 0) {
            continue;
        }
        const size_t wordEnd = word + kBreakWord.size();
        const bool boundaryBefore = word == 0 || !isPythonWordCharacter(text[word - 1]);
        const bool boundaryAfter = wordEnd == text.size() || !isPythonWordCharacter(text[wordEnd]);
        if (boundaryBefore && boundaryAfter) {
            start = candidate;
            end = skipSpaces(text, wordEnd);
            return true;
        }
    }
    return false;
}

class AttentionParser
{
public:
    std::vector<PromptFragment> parse(const std::u32string& prompt);

private:
    void handle(const AttentionToken& token, const std::u32string& tokenText);
    void appendText(const std::u32string& text);
    void multiplyFrom(size_t start, double multiplier);
    void closeOpenBrackets();
    void mergeEqualWeights();

    std::vector<PromptFragment> m_result;
    std::vector<size_t> m_roundBrackets;
    std::vector<size_t> m_squareBrackets;
};

std::vector<PromptFragment> AttentionParser::parse(const std::u32string& prompt)
{
    size_t position = 0;
    while (position < prompt.size()) {
        const AttentionToken token = matchAttentionToken(prompt, position);
        handle(token, prompt.substr(position, token.length));
        position += token.length;
    }

    closeOpenBrackets();
    if (m_result.empty()) {
        m_result.push_back({QString(), 1.0});
    }
    mergeEqualWeights();
    return m_result;
}

void AttentionParser::handle(const AttentionToken& token, const std::u32string& tokenText)
{
    using Kind = AttentionToken::Kind;
    if (token.kind == Kind::Escape) {
        m_result.push_back({QString::fromStdU32String(tokenText.substr(1)), 1.0});
    } else if (token.kind == Kind::OpenRound) {
        m_roundBrackets.push_back(m_result.size());
    } else if (token.kind == Kind::OpenSquare) {
        m_squareBrackets.push_back(m_result.size());
    } else if (token.kind == Kind::Weight && !m_roundBrackets.empty()) {
        const size_t start = m_roundBrackets.back();
        m_roundBrackets.pop_back();
        multiplyFrom(start, parseWeight(token.weight, tokenText));
    } else if (token.kind == Kind::CloseRound && !m_roundBrackets.empty()) {
        const size_t start = m_roundBrackets.back();
        m_roundBrackets.pop_back();
        multiplyFrom(start, kRoundMultiplier);
    } else if (token.kind == Kind::CloseSquare && !m_squareBrackets.empty()) {
        const size_t start = m_squareBrackets.back();
        m_squareBrackets.pop_back();
        multiplyFrom(start, kSquareMultiplier);
    } else {
        // Text, and the closers and weights that have no opener.
        appendText(tokenText);
    }
}

// re.split on BREAK: the pieces with weight 1, a ["BREAK", -1] marker between two pieces.
void AttentionParser::appendText(const std::u32string& text)
{
    size_t pieceStart = 0;
    size_t breakStart = 0;
    size_t breakEnd = 0;
    while (findBreak(text, pieceStart, breakStart, breakEnd)) {
        m_result.push_back(
            {QString::fromStdU32String(text.substr(pieceStart, breakStart - pieceStart)), 1.0});
        m_result.push_back({QString::fromStdU32String(kBreakWord), kBreakWeight});
        pieceStart = breakEnd;
    }
    m_result.push_back({QString::fromStdU32String(text.substr(pieceStart)), 1.0});
}

void AttentionParser::multiplyFrom(size_t start, double multiplier)
{
    for (size_t i = start; i < m_result.size(); ++i) {
        m_result[i].weight *= multiplier;
    }
}

// Openers never closed apply to the end of the prompt: all round ones first, then square.
void AttentionParser::closeOpenBrackets()
{
    for (size_t start : m_roundBrackets) {
        multiplyFrom(start, kRoundMultiplier);
    }
    for (size_t start : m_squareBrackets) {
        multiplyFrom(start, kSquareMultiplier);
    }
}

void AttentionParser::mergeEqualWeights()
{
    size_t i = 0;
    while (i + 1 < m_result.size()) {
        if (m_result[i].weight == m_result[i + 1].weight) {
            m_result[i].text += m_result[i + 1].text;
            m_result.erase(m_result.begin() + std::ptrdiff_t(i + 1));
        } else {
            ++i;
        }
    }
}

// tokenize_line's chunk state: the open chunk, the closed ones and the last comma's index.
class ChunkBuilder
{
public:
    ChunkBuilder(int commaToken, int commaPaddingBacktrack, const ChunkEnds& ends)
        : m_commaToken(commaToken), m_backtrack(commaPaddingBacktrack), m_ends(ends)
    {
    }

    void add(int token, double weight);
    void closeChunk(bool isLast);
    TokenizedPrompt finish();

private:
    void moveTokensAfterComma();

    int m_commaToken;
    int m_backtrack;
    ChunkEnds m_ends;
    std::vector<int> m_tokens;
    std::vector<double> m_weights;
    std::vector<PromptChunk> m_chunks;
    int m_tokenCount = 0;
    int m_lastComma = -1;
};

void ChunkBuilder::add(int token, double weight)
{
    const int size = int(m_tokens.size());
    if (token == m_commaToken) {
        m_lastComma = size;
    } else if (m_backtrack != 0 && size == kPromptChunkTokens && m_lastComma != -1 &&
               size - m_lastComma <= m_backtrack) {
        moveTokensAfterComma();
    }

    // A comma that arrives at a full chunk opens the next one with no comma remembered, as in
    // webui.
    if (int(m_tokens.size()) == kPromptChunkTokens) {
        closeChunk(false);
    }
    m_tokens.push_back(token);
    m_weights.push_back(weight);
}

void ChunkBuilder::moveTokensAfterComma()
{
    const auto breakAt = std::ptrdiff_t(m_lastComma + 1);
    std::vector<int> movedTokens(m_tokens.begin() + breakAt, m_tokens.end());
    std::vector<double> movedWeights(m_weights.begin() + breakAt, m_weights.end());
    m_tokens.resize(size_t(breakAt));
    m_weights.resize(size_t(breakAt));

    closeChunk(false);
    m_tokens = std::move(movedTokens);
    m_weights = std::move(movedWeights);
}

// next_chunk: a closed chunk counts 75 tokens, the last one only the tokens it holds.
void ChunkBuilder::closeChunk(bool isLast)
{
    m_tokenCount += isLast ? int(m_tokens.size()) : kPromptChunkTokens;

    PromptChunk chunk;
    chunk.tokens.reserve(ClipTokenizer::kContextLength);
    chunk.tokens.push_back(m_ends.start);
    chunk.tokens.insert(chunk.tokens.end(), m_tokens.begin(), m_tokens.end());
    chunk.tokens.resize(ClipTokenizer::kContextLength - 1, m_ends.end);
    chunk.tokens.push_back(m_ends.end);

    chunk.weights.reserve(ClipTokenizer::kContextLength);
    chunk.weights.push_back(1.0);
    chunk.weights.insert(chunk.weights.end(), m_weights.begin(), m_weights.end());
    chunk.weights.resize(ClipTokenizer::kContextLength, 1.0);

    m_chunks.push_back(std::move(chunk));
    m_tokens.clear();
    m_weights.clear();
    m_lastComma = -1;
}

TokenizedPrompt ChunkBuilder::finish()
{
    if (!m_tokens.empty() || m_chunks.empty()) {
        closeChunk(true);
    }
    return {std::move(m_chunks), m_tokenCount};
}

} // namespace

std::vector<PromptFragment> parsePromptAttention(const QString& prompt)
{
    return AttentionParser().parse(prompt.toStdU32String());
}

TokenizedPrompt tokenizePrompt(const ClipTokenizer& tokenizer, const QString& prompt,
                               const PromptChunkingOptions& options)
{
    const std::vector<PromptFragment> fragments = options.parseEmphasis
                                                      ? parsePromptAttention(prompt)
                                                      : std::vector<PromptFragment>{{prompt, 1.0}};

    std::vector<std::vector<int>> fragmentTokens;
    fragmentTokens.reserve(fragments.size());
    for (const PromptFragment& fragment : fragments) {
        fragmentTokens.push_back(fragment.isBreak() ? std::vector<int>()
                                                    : tokenizer.encode(fragment.text));
    }
    return chunkFragments(fragments, fragmentTokens, tokenizer.tokenId(QStringLiteral(",</w>")),
                          options.commaPaddingBacktrack, chunkEndsOf(tokenizer));
}

TokenizedPrompt chunkFragments(const std::vector<PromptFragment>& fragments,
                               const std::vector<std::vector<int>>& fragmentTokens, int commaToken,
                               int commaPaddingBacktrack, const ChunkEnds& ends)
{
    if (fragments.size() != fragmentTokens.size()) {
        throw Error(QStringLiteral("chunkFragments: %1 fragments but %2 token lists")
                        .arg(fragments.size())
                        .arg(fragmentTokens.size()));
    }

    ChunkBuilder builder(commaToken, commaPaddingBacktrack, ends);
    for (size_t i = 0; i < fragments.size(); ++i) {
        if (fragments[i].isBreak()) {
            builder.closeChunk(false);
            continue;
        }
        for (int token : fragmentTokens[i]) {
            builder.add(token, fragments[i].weight);
        }
    }
    return builder.finish();
}

ChunkEnds chunkEndsOf(const ClipTokenizer& tokenizer)
{
    return {tokenizer.startOfTextId(), tokenizer.endOfTextId()};
}

PromptChunk emptyPromptChunk(const ChunkEnds& ends)
{
    PromptChunk chunk;
    chunk.tokens.assign(ClipTokenizer::kContextLength, ends.end);
    chunk.tokens.front() = ends.start;
    chunk.weights.assign(ClipTokenizer::kContextLength, 1.0);
    return chunk;
}

void padToCommonChunkCount(std::vector<TokenizedPrompt>& prompts, const ChunkEnds& ends)
{
    size_t chunkCount = 0;
    for (const TokenizedPrompt& prompt : prompts) {
        chunkCount = std::max(chunkCount, prompt.chunks.size());
    }
    for (TokenizedPrompt& prompt : prompts) {
        prompt.chunks.resize(chunkCount, emptyPromptChunk(ends));
    }
}

void zeroPadAfterEnd(PromptChunk& chunk, const ChunkEnds& ends)
{
    const auto end = std::find(chunk.tokens.begin(), chunk.tokens.end(), ends.end);
    if (end != chunk.tokens.end()) {
        std::fill(end + 1, chunk.tokens.end(), 0);
    }
}

} // namespace studio
