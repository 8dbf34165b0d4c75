// A CLIP vocabulary learnt from captions (core/text/BpeVocabularyBuilder.h), written in the
// Hugging Face layout and read back by ClipTokenizer: the files, the merges, and captions
// that tokenize into whole-word tokens with the vocabulary's own start and end ids.

#include "core/demo/ShapeScenes.h"
#include "core/text/BpeVocabularyBuilder.h"
#include "core/text/ClipTokenizer.h"
#include "core/text/PromptParser.h"

#include "support/TestSupport.h"

#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <set>

using namespace studio;

namespace {

QByteArray readFile(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

bool writeFile(const QString& path, const QByteArray& bytes)
{
    QFile file(path);
    return file.open(QIODevice::WriteOnly) && file.write(bytes) == bytes.size();
}

const QStringList kCaptions = {
    QStringLiteral("a red circle on a blue background"),
    QStringLiteral("two yellow squares on a white background, left"),
    QStringLiteral("three red stars on a black background, top"),
    QStringLiteral("a blue circle on a red background"),
};

} // namespace

class TestBpeVocabulary : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void learnsMerges();
    void respectsLimits();
    void writesHuggingFaceLayout();
    void captionsRoundTrip();
    void demoVocabulary();
    void inconsistentPairsAreRefused();
    void writeErrors();
};

void TestBpeVocabulary::learnsMerges()
{
    const BpeVocabulary vocabulary = learnBpeVocabulary(kCaptions);
    // 512 byte tokens, one per merge, start and end.
    QCOMPARE(vocabulary.tokens.size(), 512 + vocabulary.merges.size() + 2);
    QCOMPARE(vocabulary.tokens[0], QStringLiteral("!"));
    QCOMPARE(vocabulary.tokens[256], QStringLiteral("!</w>"));
    QCOMPARE(vocabulary.tokens[vocabulary.tokens.size() - 2], QStringLiteral("<|startoftext|>"));
    QCOMPARE(vocabulary.tokens.back(), QStringLiteral("<|endoftext|>"));
    for (size_t i = 0; i < vocabulary.merges.size(); ++i) {
        QCOMPARE(vocabulary.tokens[512 + i],
                 vocabulary.merges[i].first + vocabulary.merges[i].second);
    }
    // Every token once.
    const std::set<QString> distinct(vocabulary.tokens.begin(), vocabulary.tokens.end());
    QCOMPARE(distinct.size(), vocabulary.tokens.size());
    // Whole words end up as single tokens.
    for (const char* word : {"red</w>", "background</w>", "circle</w>", "squares</w>"}) {
        QVERIFY2(distinct.count(QString::fromLatin1(word)) == 1, word);
    }
    // The same texts in another order learn the same vocabulary.
    QStringList reversed = kCaptions;
    std::reverse(reversed.begin(), reversed.end());
    QCOMPARE(learnBpeVocabulary(reversed).merges, vocabulary.merges);
}

void TestBpeVocabulary::respectsLimits()
{
    BpeOptions options;
    options.maxMerges = 5;
    QCOMPARE(learnBpeVocabulary(kCaptions, options).merges.size(), size_t(5));
    // Pairs seen once are not merged when two sightings are required: "yellow" occurs once.
    options = BpeOptions{};
    options.minPairCount = 2;
    const BpeVocabulary frequent = learnBpeVocabulary(kCaptions, options);
    QVERIFY(frequent.merges.size() < learnBpeVocabulary(kCaptions).merges.size());
    const std::set<QString> tokens(frequent.tokens.begin(), frequent.tokens.end());
    QCOMPARE(tokens.count(QStringLiteral("yellow</w>")), size_t(0));
    QCOMPARE(tokens.count(QStringLiteral("background</w>")), size_t(1));
    // No text: the 514 fixed tokens only.
    QCOMPARE(learnBpeVocabulary({}).tokens.size(), size_t(514));
}

void TestBpeVocabulary::writesHuggingFaceLayout()
{
    QTemporaryDir folder;
    QVERIFY(folder.isValid());
    const QString target = folder.filePath(QStringLiteral("new/tokenizer"));
    const BpeVocabulary vocabulary = learnBpeVocabulary(kCaptions);
    writeBpeVocabulary(vocabulary, target);

    const QJsonObject vocab =
        QJsonDocument::fromJson(readFile(QDir(target).filePath(QStringLiteral("vocab.json"))))
            .object();
    QCOMPARE(size_t(vocab.size()), vocabulary.tokens.size());
    for (size_t id = 0; id < vocabulary.tokens.size(); ++id) {
        QCOMPARE(vocab.value(vocabulary.tokens[id]).toInt(-1), int(id));
    }
    const QList<QByteArray> lines =
        readFile(QDir(target).filePath(QStringLiteral("merges.txt"))).split('\n');
    QCOMPARE(lines.front(), QByteArray("#version: 0.2"));
    QCOMPARE(size_t(lines.size()), 1 + vocabulary.merges.size() + 1); // ends with a newline
    QCOMPARE(lines[1],
             vocabulary.merges[0].first.toUtf8() + ' ' + vocabulary.merges[0].second.toUtf8());
}

void TestBpeVocabulary::captionsRoundTrip()
{
    QTemporaryDir folder;
    QVERIFY(folder.isValid());
    const BpeVocabulary vocabulary = learnBpeVocabulary(kCaptions);
    writeBpeVocabulary(vocabulary, folder.path());

    const ClipTokenizer tokenizer(folder.path());
    const int size = int(vocabulary.tokens.size());
    QCOMPARE(tokenizer.vocabularySize(), size);
    QCOMPARE(tokenizer.startOfTextId(), size - 2);
    QCOMPARE(tokenizer.endOfTextId(), size - 1);

    for (const QString& caption : kCaptions) {
        // One token per word (and one for the comma).
        const std::vector<int> ids = tokenizer.encode(caption);
        QCOMPARE(int(ids.size()), int(ClipTokenizer::pieces(caption).size()));
        // Words of more than one letter are merged tokens; ",</w>" is a byte token.
        const QStringList words = ClipTokenizer::pieces(caption);
        for (size_t i = 0; i < ids.size(); ++i) {
            QVERIFY(ids[i] >= (words[qsizetype(i)].size() > 1 ? 512 : 0) && ids[i] < size - 2);
        }
        // decode() ends every word with a space, the comma included.
        QCOMPARE(tokenizer.decode(ids).trimmed(), words.join(QLatin1Char(' ')));

        const std::vector<int> context = tokenizer.tokenize77(caption);
        QCOMPARE(int(context.size()), ClipTokenizer::kContextLength);
        QCOMPARE(context.front(), size - 2);
        QCOMPARE(context[ids.size() + 1], size - 1);
        QCOMPARE(context.back(), size - 1); // padded with the end token
        QCOMPARE(tokenizer.tokenize77(caption, 0).back(), 0);

        // The webui's chunking (what the text encoder sees) uses the same ids.
        TokenizedPrompt prompt = tokenizePrompt(tokenizer, caption);
        QCOMPARE(prompt.chunks.front().tokens, context);
        std::vector<TokenizedPrompt> batch = {prompt, tokenizePrompt(tokenizer, QString())};
        batch[1].chunks.clear();
        padToCommonChunkCount(batch, chunkEndsOf(tokenizer));
        QCOMPARE(batch[1].chunks.front().tokens.front(), size - 2);
        QCOMPARE(batch[1].chunks.front().tokens.back(), size - 1);
        zeroPadAfterEnd(prompt.chunks.front(), chunkEndsOf(tokenizer));
        QCOMPARE(prompt.chunks.front().tokens.back(), 0);
    }
    // Words never seen fall back to smaller pieces, down to bytes, all inside the vocabulary.
    const std::vector<int> unseen = tokenizer.encode(QStringLiteral("a zebra, émigré 42"));
    QVERIFY(unseen.size() > 4);
    for (int id : unseen) {
        QVERIFY(id >= 0 && id < size - 2);
    }
    QCOMPARE(tokenizer.decode(unseen).trimmed(), QStringLiteral("a zebra , émigré 4 2"));
}

void TestBpeVocabulary::demoVocabulary()
{
    // The demo's vocabulary: every word of every scene caption is one token.
    const QStringList captions = demo::allSceneCaptions();
    const BpeVocabulary vocabulary = learnBpeVocabulary(captions);
    QVERIFY(vocabulary.tokens.size() < 1000);
    QTemporaryDir folder;
    QVERIFY(folder.isValid());
    writeBpeVocabulary(vocabulary, folder.path());
    const ClipTokenizer tokenizer(folder.filePath(QStringLiteral("merges.txt")));
    for (const QString& caption : {captions.front(), captions[1234], captions.back()}) {
        QCOMPARE(tokenizer.encode(caption).size(), size_t(ClipTokenizer::pieces(caption).size()));
    }
    for (const char* word : {"circles", "triangle", "purple", "orange", "bottom", "three"}) {
        QVERIFY2(tokenizer.tokenId(QString::fromLatin1(word) + QStringLiteral("</w>")) >= 512,
                 word);
    }
}

void TestBpeVocabulary::inconsistentPairsAreRefused()
{
    QTemporaryDir folder;
    QVERIFY(folder.isValid());
    const BpeVocabulary vocabulary = learnBpeVocabulary(kCaptions);
    writeBpeVocabulary(vocabulary, folder.path());
    const QString vocabJson = QDir(folder.path()).filePath(QStringLiteral("vocab.json"));
    const QString merges = QDir(folder.path()).filePath(QStringLiteral("merges.txt"));

    // merges.txt cut short: the counts disagree.
    const QByteArray mergesText = readFile(merges);
    QVERIFY(writeFile(merges, mergesText.left(mergesText.size() / 2)));
    STUDIO_VERIFY_ERROR(ClipTokenizer{vocabJson}, "one of the files is truncated");
    QVERIFY(writeFile(merges, mergesText));
    QCOMPARE(ClipTokenizer(vocabJson).vocabularySize(), int(vocabulary.tokens.size()));

    // A merge whose result is not in vocab.json.
    QByteArray swapped = mergesText;
    const QByteArray first =
        vocabulary.merges[0].first.toUtf8() + ' ' + vocabulary.merges[0].second.toUtf8() + '\n';
    swapped.replace(first, "q z\n");
    QVERIFY(writeFile(merges, swapped));
    STUDIO_VERIFY_ERROR(ClipTokenizer{vocabJson}, "'qz', which is not in the vocabulary");
    QVERIFY(writeFile(merges, mergesText));

    // The special tokens must be the last two ids.
    QJsonObject vocab = QJsonDocument::fromJson(readFile(vocabJson)).object();
    const int end = vocab.value(QStringLiteral("<|endoftext|>")).toInt();
    vocab.insert(QStringLiteral("<|endoftext|>"), 0);
    vocab.insert(QStringLiteral("!"), end);
    QVERIFY(writeFile(vocabJson, QJsonDocument(vocab).toJson()));
    STUDIO_VERIFY_ERROR(ClipTokenizer{vocabJson}, "must have the last two ids");
}

void TestBpeVocabulary::writeErrors()
{
    QTemporaryDir folder;
    QVERIFY(folder.isValid());
    const QString file = folder.filePath(QStringLiteral("a-file"));
    QVERIFY(writeFile(file, "x"));
    STUDIO_VERIFY_ERROR(
        writeBpeVocabulary(learnBpeVocabulary(kCaptions), file + QStringLiteral("/sub")),
        "cannot create the vocabulary folder");
}

QTEST_GUILESS_MAIN(TestBpeVocabulary)
#include "TestBpeVocabulary.moc"
