// webui's prompt emphasis parsing and chunking (spec sd-architecture.md sections 4.1 and 4.2).
// Expected fragments and weights are those webui's parse_prompt_attention and tokenize_line
// return (its doctests, and the functions run under Python 3.11): weights compare exactly,
// since they are products of the same doubles in the same order.

#include "core/text/ClipTokenizer.h"
#include "core/text/PromptParser.h"

#include "support/TestSupport.h"

#include <QObject>
#include <QTest>

#include <algorithm>
#include <optional>

using namespace studio;

namespace {

using Fragments = std::vector<std::pair<QString, double>>;

QString describe(const std::vector<PromptFragment>& fragments)
{
    QStringList parts;
    for (const PromptFragment& fragment : fragments) {
        parts << QStringLiteral("['%1', %2]").arg(fragment.text).arg(fragment.weight, 0, 'g', 17);
    }
    return parts.join(QStringLiteral(", "));
}

bool sameFragments(const std::vector<PromptFragment>& actual, const Fragments& expected)
{
    if (actual.size() != expected.size()) {
        return false;
    }
    for (size_t i = 0; i < actual.size(); ++i) {
        if (actual[i].text != expected[i].first || actual[i].weight != expected[i].second) {
            return false;
        }
    }
    return true;
}

// The part of a chunk between the start token and the first end token.
std::vector<int> textTokens(const PromptChunk& chunk)
{
    const auto end = std::find(chunk.tokens.begin() + 1, chunk.tokens.end(), 49407);
    return std::vector<int>(chunk.tokens.begin() + 1, end);
}

void verifyFrame(const PromptChunk& chunk)
{
    QCOMPARE(int(chunk.tokens.size()), 77);
    QCOMPARE(int(chunk.weights.size()), 77);
    QCOMPARE(chunk.tokens.front(), 49406);
    QCOMPARE(chunk.tokens.back(), 49407);
    QCOMPARE(chunk.weights.front(), 1.0);
    QCOMPARE(chunk.weights.back(), 1.0);
    // Padding after the text: end tokens with weight 1.
    for (size_t i = textTokens(chunk).size() + 1; i < 77; ++i) {
        QCOMPARE(chunk.tokens[i], 49407);
        QCOMPARE(chunk.weights[i], 1.0);
    }
}

constexpr int kA = 320;
constexpr int kB = 321;
constexpr int kComma = 267;

} // namespace

class TestPromptParser : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();

    void parse_data();
    void parse();
    void breakInsideBracketsIsText();
    void invalidWeight();

    void shortPrompt();
    void emptyPrompt();
    void weightsPerToken();
    void emphasisDisabled();
    void chunkBoundary();
    void longReferencePrompt();
    void commaBacktrack();
    void commaAtFullChunk();
    void breakClosesChunk();
    void batchHelpers();
    void chunkFragmentsChecksSizes();

private:
    std::optional<ClipTokenizer> m_tokenizer;
};

void TestPromptParser::initTestCase()
{
    m_tokenizer.emplace(
        test::referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz")));
    // webui's SD1 path tokenizes with Hugging Face's CLIPTokenizer, which keeps "&amp;".
    m_tokenizer->setUnescapeHtml(false);
}

void TestPromptParser::parse_data()
{
    QTest::addColumn<QString>("prompt");
    QTest::addColumn<Fragments>("expected");
    const double roundTwice = 1.1 * 1.1;
    const double squareOnce = 1 / 1.1;

    // webui's doctests
    QTest::newRow("plain") << "normal text" << Fragments{{"normal text", 1.0}};
    QTest::newRow("round") << "an (important) word"
                           << Fragments{{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}};
    QTest::newRow("unbalanced") << "(unbalanced" << Fragments{{"unbalanced", 1.1}};
    QTest::newRow("escapes") << "\\(literal\\]" << Fragments{{"(literal]", 1.0}};
    QTest::newRow("merged") << "(unnecessary)(parens)" << Fragments{{"unnecessaryparens", 1.1}};
    QTest::newRow("doctest") << "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."
                             << Fragments{{"a ", 1.0},      {"house", 1.5730000000000004},
                                          {" ", 1.1},       {"on", 1.0},
                                          {" a ", 1.1},     {"hill", 0.55},
                                          {", sun, ", 1.1}, {"sky", 1.4641000000000006},
                                          {".", 1.1}};

    // nesting and explicit weights
    QTest::newRow("nested round") << "((a))" << Fragments{{"a", roundTwice}};
    QTest::newRow("nested round value") << "((a))" << Fragments{{"a", 1.2100000000000002}};
    QTest::newRow("nested square") << "[[a]]" << Fragments{{"a", 0.8264462809917354}};
    QTest::newRow("round in square") << "[(a)]" << Fragments{{"a", 1.0}};
    QTest::newRow("weights nest") << "((a:2)b:3)c" << Fragments{{"a", 6.0}, {"b", 3.0}, {"c", 1.0}};
    QTest::newRow("weight") << "(a:1.5) b" << Fragments{{"a", 1.5}, {" b", 1.0}};
    QTest::newRow("weight with spaces") << "(a: 1.5 ) b" << Fragments{{"a", 1.5}, {" b", 1.0}};
    QTest::newRow("negative weight") << "(a:-1)" << Fragments{{"a", -1.0}};
    QTest::newRow("signed fraction") << "(a:+.5)" << Fragments{{"a", 0.5}};
    QTest::newRow("trailing dot") << "(a:1.)" << Fragments{{"a", 1.0}};
    QTest::newRow("full-width digits") << "(a:１.５)" << Fragments{{"a", 1.5}};
    QTest::newRow("zero weight merges") << "(BREAK:0)" << Fragments{{"BREAK", 0.0}};

    // unbalanced brackets as webui treats them
    QTest::newRow("open square") << "[a" << Fragments{{"a", squareOnce}};
    QTest::newRow("open round then square") << "(a [b" << Fragments{{"a ", 1.1}, {"b", 1.0}};
    QTest::newRow("unmatched closers") << "a) b]" << Fragments{{"a) b]", 1.0}};
    QTest::newRow("weight without paren") << ":1.2) x" << Fragments{{":1.2) x", 1.0}};
    QTest::newRow("colon") << "a:b" << Fragments{{"a:b", 1.0}};

    // backslashes
    QTest::newRow("escaped backslash") << "a\\\\b" << Fragments{{"a\\b", 1.0}};
    QTest::newRow("lone backslash") << "a\\b" << Fragments{{"ab", 1.0}};
    QTest::newRow("backslash colon") << "\\:x" << Fragments{{":x", 1.0}};

    // BREAK, a whole word only, with the whitespace around it
    QTest::newRow("break") << "a BREAK b" << Fragments{{"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0}};
    QTest::newRow("break whitespace")
        << "a\tBREAK\nb" << Fragments{{"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0}};
    QTest::newRow("break alone") << "BREAK" << Fragments{{"", 1.0}, {"BREAK", -1.0}, {"", 1.0}};
    QTest::newRow("break inside word") << "aBREAK b" << Fragments{{"aBREAK b", 1.0}};
    QTest::newRow("break underscore") << "BREAK_x" << Fragments{{"BREAK_x", 1.0}};
    QTest::newRow("empty") << "" << Fragments{{"", 1.0}};
}

void TestPromptParser::parse()
{
    QFETCH(QString, prompt);
    QFETCH(Fragments, expected);
    const std::vector<PromptFragment> fragments = parsePromptAttention(prompt);
    QVERIFY2(sameFragments(fragments, expected), qPrintable(describe(fragments)));
}

void TestPromptParser::breakInsideBracketsIsText()
{
    // The marker's -1 is multiplied by the bracket, so webui no longer sees a BREAK.
    const std::vector<PromptFragment> fragments =
        parsePromptAttention(QStringLiteral("(a BREAK b)"));
    QVERIFY2(sameFragments(fragments, {{"a", 1.1}, {"BREAK", -1.1}, {"b", 1.1}}),
             qPrintable(describe(fragments)));
    QVERIFY(!fragments[1].isBreak());
    QVERIFY(parsePromptAttention(QStringLiteral("a BREAK b"))[1].isBreak());

    const TokenizedPrompt prompt = tokenizePrompt(*m_tokenizer, QStringLiteral("(a BREAK b)"));
    QCOMPARE(int(prompt.chunks.size()), 1);
    QCOMPARE(textTokens(prompt.chunks[0]), (std::vector<int>{kA, 2568, kB}));
    QCOMPARE(prompt.chunks[0].weights[2], -1.1);
}

void TestPromptParser::invalidWeight()
{
    // Python's float() raises on these; webui fails the generation.
    STUDIO_VERIFY_ERROR(parsePromptAttention(QStringLiteral("(a:1.2.3)")), "'1.2.3'");
    STUDIO_VERIFY_ERROR(parsePromptAttention(QStringLiteral("(a:.)")), "is not a number");
    // Without an open parenthesis it is plain text.
    QCOMPARE(parsePromptAttention(QStringLiteral("a:1.2.3)")).front().text,
             QStringLiteral("a:1.2.3)"));
}

void TestPromptParser::shortPrompt()
{
    const TokenizedPrompt prompt = tokenizePrompt(*m_tokenizer, QStringLiteral("a photo of a cat"));
    QCOMPARE(int(prompt.chunks.size()), 1);
    QCOMPARE(prompt.tokenCount, 5);
    verifyFrame(prompt.chunks[0]);
    // Without emphasis the chunk is exactly plain CLIP tokenization.
    QCOMPARE(prompt.chunks[0].tokens, m_tokenizer->tokenize77(QStringLiteral("a photo of a cat")));
    QCOMPARE(prompt.chunks[0].weights, std::vector<double>(77, 1.0));
}

void TestPromptParser::emptyPrompt()
{
    const TokenizedPrompt prompt = tokenizePrompt(*m_tokenizer, QString());
    QCOMPARE(int(prompt.chunks.size()), 1);
    QCOMPARE(prompt.tokenCount, 0);
    QCOMPARE(prompt.chunks[0].tokens, emptyPromptChunk().tokens);
    QCOMPARE(prompt.chunks[0].weights, std::vector<double>(77, 1.0));
}

void TestPromptParser::weightsPerToken()
{
    const TokenizedPrompt prompt =
        tokenizePrompt(*m_tokenizer, QStringLiteral("a (cat dog:1.5) [b]"));
    QCOMPARE(int(prompt.chunks.size()), 1);
    const PromptChunk& chunk = prompt.chunks[0];
    verifyFrame(chunk);
    QCOMPARE(textTokens(chunk), (std::vector<int>{kA, 2368, 1929, kB}));
    QCOMPARE(chunk.weights[1], 1.0);
    QCOMPARE(chunk.weights[2], 1.5);
    QCOMPARE(chunk.weights[3], 1.5);
    QCOMPARE(chunk.weights[4], 1 / 1.1);
}

void TestPromptParser::emphasisDisabled()
{
    PromptChunkingOptions options;
    options.parseEmphasis = false;
    const TokenizedPrompt prompt =
        tokenizePrompt(*m_tokenizer, QStringLiteral("(cat:1.5) BREAK a"), options);
    QCOMPARE(int(prompt.chunks.size()), 1);
    QCOMPARE(textTokens(prompt.chunks[0]),
             (std::vector<int>{263, 2368, 281, 272, 269, 276, 264, 2568, kA}));
    QCOMPARE(prompt.chunks[0].weights, std::vector<double>(77, 1.0));
}

void TestPromptParser::chunkBoundary()
{
    const TokenizedPrompt exact = tokenizePrompt(*m_tokenizer, QStringLiteral("a ").repeated(75));
    QCOMPARE(int(exact.chunks.size()), 1);
    QCOMPARE(exact.tokenCount, 75);
    QCOMPARE(textTokens(exact.chunks[0]), std::vector<int>(75, kA));
    verifyFrame(exact.chunks[0]);

    const TokenizedPrompt over = tokenizePrompt(*m_tokenizer, QStringLiteral("a ").repeated(76));
    QCOMPARE(int(over.chunks.size()), 2);
    QCOMPARE(over.tokenCount, 76);
    QCOMPARE(textTokens(over.chunks[0]), std::vector<int>(75, kA));
    QCOMPARE(textTokens(over.chunks[1]), std::vector<int>{kA});
    verifyFrame(over.chunks[1]);
}

void TestPromptParser::longReferencePrompt()
{
    // The 90-token reference caption; "(season)" carries weight 1.1.
    const QString text = QStringLiteral(
        "masterpiece, best quality, ultra-detailed, illustration, 1girl, solo, long hair, very "
        "long hair, looking at viewer, smile, open mouth, blue eyes, blonde hair, hair ornament, "
        "dress, bow, holding, standing, flower, outdoors, sky, day, cloud, water, tree, blue sky, "
        "petals, cherry blossoms, wind, scenery, reflection, lake, mountain, spring (season), "
        "pink flower, falling petals");
    const TokenizedPrompt prompt = tokenizePrompt(*m_tokenizer, text);
    QCOMPARE(int(prompt.chunks.size()), 2);
    QCOMPARE(prompt.tokenCount, 89);
    verifyFrame(prompt.chunks[0]);
    verifyFrame(prompt.chunks[1]);

    QCOMPARE(int(textTokens(prompt.chunks[0]).size()), 75);
    QCOMPARE(prompt.chunks[0].weights, std::vector<double>(77, 1.0));
    QCOMPARE(textTokens(prompt.chunks[1]),
             (std::vector<int>{11884, 267, 2553, 267, 3965, 267, 2420, 1367, 267, 3360, 4055, 267,
                               7293, 26064}));
    for (int i = 0; i < 77; ++i) {
        QCOMPARE(prompt.chunks[1].weights[size_t(i)], i == 8 ? 1.1 : 1.0);
    }
}

void TestPromptParser::commaBacktrack()
{
    // 70 x "a", a comma, then 10 x "b" weighted 1.3: the chunk fills 4 tokens after the comma.
    const QString text = QStringLiteral("a ").repeated(70) + QStringLiteral(", ") +
                         QStringLiteral("(b:1.3) ").repeated(10);

    const TokenizedPrompt moved = tokenizePrompt(*m_tokenizer, text);
    QCOMPARE(int(moved.chunks.size()), 2);
    QCOMPARE(moved.tokenCount, 85);
    std::vector<int> first(70, kA);
    first.push_back(kComma);
    QCOMPARE(textTokens(moved.chunks[0]), first);
    QCOMPARE(textTokens(moved.chunks[1]), std::vector<int>(10, kB));
    verifyFrame(moved.chunks[0]);
    for (int i = 1; i <= 10; ++i) {
        QCOMPARE(moved.chunks[1].weights[size_t(i)], 1.3);
    }

    // Disabled, or the comma further back than the setting: a plain cut after 75 tokens.
    for (int backtrack : {0, 3}) {
        PromptChunkingOptions options;
        options.commaPaddingBacktrack = backtrack;
        const TokenizedPrompt cut = tokenizePrompt(*m_tokenizer, text, options);
        QCOMPARE(int(cut.chunks.size()), 2);
        QCOMPARE(cut.tokenCount, 81);
        QCOMPARE(int(textTokens(cut.chunks[0]).size()), 75);
        QCOMPARE(textTokens(cut.chunks[1]), std::vector<int>(6, kB));
        QCOMPARE(cut.chunks[0].weights[75], 1.3);
    }
}

void TestPromptParser::commaAtFullChunk()
{
    const TokenizedPrompt prompt =
        tokenizePrompt(*m_tokenizer, QStringLiteral("a ").repeated(75) + QStringLiteral(", b"));
    QCOMPARE(int(prompt.chunks.size()), 2);
    QCOMPARE(prompt.tokenCount, 77);
    QCOMPARE(textTokens(prompt.chunks[0]), std::vector<int>(75, kA));
    QCOMPARE(textTokens(prompt.chunks[1]), (std::vector<int>{kComma, kB}));
}

void TestPromptParser::breakClosesChunk()
{
    const TokenizedPrompt prompt = tokenizePrompt(*m_tokenizer, QStringLiteral("a BREAK b"));
    QCOMPARE(int(prompt.chunks.size()), 2);
    QCOMPARE(prompt.tokenCount, 76);
    QCOMPARE(textTokens(prompt.chunks[0]), std::vector<int>{kA});
    QCOMPARE(textTokens(prompt.chunks[1]), std::vector<int>{kB});
    verifyFrame(prompt.chunks[0]);

    // A BREAK closes even an empty chunk; nothing after it adds one.
    const TokenizedPrompt alone = tokenizePrompt(*m_tokenizer, QStringLiteral("BREAK"));
    QCOMPARE(int(alone.chunks.size()), 1);
    QCOMPARE(alone.tokenCount, 75);
    QCOMPARE(alone.chunks[0].tokens, emptyPromptChunk().tokens);
}

void TestPromptParser::batchHelpers()
{
    std::vector<TokenizedPrompt> batch = {
        tokenizePrompt(*m_tokenizer, QStringLiteral("a ").repeated(80)),
        tokenizePrompt(*m_tokenizer, QStringLiteral("b")),
    };
    padToCommonChunkCount(batch);
    QCOMPARE(int(batch[0].chunks.size()), 2);
    QCOMPARE(int(batch[1].chunks.size()), 2);
    QCOMPARE(batch[1].chunks[1].tokens, emptyPromptChunk().tokens);
    QCOMPARE(batch[1].tokenCount, 1);

    const PromptChunk empty = emptyPromptChunk();
    QCOMPARE(empty.tokens.front(), 49406);
    QCOMPARE(std::count(empty.tokens.begin(), empty.tokens.end(), 49407), 76L);
    QCOMPARE(empty.weights, std::vector<double>(77, 1.0));

    // SD2: everything after the first end token becomes 0, including a non-full chunk's end.
    PromptChunk chunk = batch[1].chunks[0];
    zeroPadAfterEnd(chunk);
    QCOMPARE(chunk.tokens[0], 49406);
    QCOMPARE(chunk.tokens[1], kB);
    QCOMPARE(chunk.tokens[2], 49407);
    QCOMPARE(std::count(chunk.tokens.begin(), chunk.tokens.end(), 0), 74L);

    PromptChunk full = batch[0].chunks[0];
    zeroPadAfterEnd(full);
    QCOMPARE(full.tokens, batch[0].chunks[0].tokens);
}

void TestPromptParser::chunkFragmentsChecksSizes()
{
    STUDIO_VERIFY_ERROR(chunkFragments({{QStringLiteral("a"), 1.0}}, {}, kComma, 20),
                        "1 fragments but 0 token lists");
    const TokenizedPrompt prompt =
        chunkFragments({{QStringLiteral("x"), 2.0}}, {{kA, kComma, kB}}, kComma, 20);
    QCOMPARE(textTokens(prompt.chunks[0]), (std::vector<int>{kA, kComma, kB}));
    QCOMPARE(prompt.chunks[0].weights[2], 2.0);
}

QTEST_GUILESS_MAIN(TestPromptParser)
#include "TestPromptParser.moc"
