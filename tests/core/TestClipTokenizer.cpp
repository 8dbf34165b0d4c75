// The CLIP tokenizer against openai/CLIP's own output (reference/tokenizer/, README section 7):
// every reference caption, id for id; text cleanup cases beyond the reference (HTML entities,
// Python's lower-casing, Unicode whitespace and digits); the plain-text and Hugging Face
// vocabulary layouts; the search for a vocabulary (studio.md section 3) and the error messages.

#include "core/text/ClipTokenizer.h"

#include "support/TestSupport.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <QTemporaryDir>
#include <QTest>

#include <zlib.h>

#include <algorithm>
#include <optional>
#include <thread>

using namespace studio;

namespace {

const QString kReferenceVocabulary = QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz");
const QString kReferenceCases = QStringLiteral("tokenizer/tokenizer_cases.json");

std::vector<int> intsOf(const QJsonArray& array)
{
    std::vector<int> values;
    for (const QJsonValue& value : array) {
        values.push_back(value.toInt());
    }
    return values;
}

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

// The reference vocabulary unpacked, to write the plain and Hugging Face layouts from it.
QByteArray gunzipFile(const QString& path)
{
    QByteArray text;
    gzFile file = gzopen(QFile::encodeName(path).constData(), "rb");
    if (file == nullptr) {
        return text;
    }
    char buffer[1 << 16];
    int count = 0;
    while ((count = gzread(file, buffer, sizeof(buffer))) > 0) {
        text.append(buffer, count);
    }
    gzclose(file);
    return text;
}

// Restores an environment variable when the test ends.
class ScopedEnvironment
{
public:
    ScopedEnvironment(const char* name, const QByteArray& value)
        : m_name(name), m_old(qgetenv(name)), m_wasSet(qEnvironmentVariableIsSet(name))
    {
        qputenv(name, value);
    }
    ~ScopedEnvironment()
    {
        if (m_wasSet) {
            qputenv(m_name, m_old);
        } else {
            qunsetenv(m_name);
        }
    }

private:
    const char* m_name;
    QByteArray m_old;
    bool m_wasSet;
};

} // namespace

class TestClipTokenizer : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();

    void vocabulary();
    void referenceCases_data();
    void referenceCases();
    void cleanupBeyondReference_data();
    void cleanupBeyondReference();
    void withoutHtmlUnescaping();
    void truncatesLongTexts();
    void decodeRejectsUnknownIds();
    void copiesAndThreadsAgree();

    void plainTextVocabulary();
    void huggingFaceLayout();
    void loadErrors();

    void locateFindsVocabularies();
    void locateErrors();

private:
    // Every reference caption encoded by `tokenizer` matches the reference ids.
    void verifyAllCases(const ClipTokenizer& tokenizer);
    // vocab.json + merges.txt written from the reference vocabulary into `folder`.
    void writeHuggingFaceLayout(const QString& folder);

    std::optional<ClipTokenizer> m_tokenizer;
    QJsonObject m_reference;
    QByteArray m_mergesText;
};

void TestClipTokenizer::initTestCase()
{
    const QByteArray json = readFile(test::referencePath(kReferenceCases));
    QVERIFY2(!json.isEmpty(), qPrintable(test::referencePath(kReferenceCases)));
    m_reference = QJsonDocument::fromJson(json).object();
    QCOMPARE(m_reference.value(QStringLiteral("cases")).toArray().size(), 30);

    m_tokenizer.emplace(test::referencePath(kReferenceVocabulary));
    m_mergesText = gunzipFile(test::referencePath(kReferenceVocabulary));
    QVERIFY(m_mergesText.startsWith("\"bpe_simple_vocab_16e6.txt#version: 0.2\n"));
}

void TestClipTokenizer::vocabulary()
{
    const ClipTokenizer& tokenizer = *m_tokenizer;
    QCOMPARE(tokenizer.vocabularySize(), m_reference.value(QStringLiteral("vocab_size")).toInt());
    QCOMPARE(int(ClipTokenizer::kVocabularySize), 49408);
    QCOMPARE(int(ClipTokenizer::kStartOfText), m_reference.value(QStringLiteral("sot_id")).toInt());
    QCOMPARE(int(ClipTokenizer::kEndOfText), m_reference.value(QStringLiteral("eot_id")).toInt());
    QCOMPARE(int(ClipTokenizer::kContextLength),
             m_reference.value(QStringLiteral("context_length")).toInt());

    // bytes_to_unicode order: '!' first; byte 0 is the first non-printable, U+0100.
    QCOMPARE(tokenizer.tokenString(0), QStringLiteral("!"));
    QCOMPARE(tokenizer.tokenString(188), QString(QChar(0x100)));
    QCOMPARE(tokenizer.tokenString(256), QStringLiteral("!</w>"));
    QCOMPARE(tokenizer.tokenString(512), QStringLiteral("in"));
    QCOMPARE(tokenizer.tokenString(49406), QStringLiteral("<|startoftext|>"));
    QCOMPARE(tokenizer.tokenString(49407), QStringLiteral("<|endoftext|>"));
    QCOMPARE(tokenizer.tokenId(QStringLiteral(",</w>")), 267);
    QCOMPARE(tokenizer.tokenId(QStringLiteral("cat</w>")), 2368);
    QCOMPARE(tokenizer.tokenId(QStringLiteral("no such token")), -1);
    QVERIFY(tokenizer.tokenString(-1).isEmpty());
    QVERIFY(tokenizer.tokenString(49408).isEmpty());
    QCOMPARE(tokenizer.sourcePath(), test::referencePath(kReferenceVocabulary));
    QCOMPARE(tokenizer.startOfTextId(), int(ClipTokenizer::kStartOfText));
    QCOMPARE(tokenizer.endOfTextId(), int(ClipTokenizer::kEndOfText));
}

void TestClipTokenizer::referenceCases_data()
{
    QTest::addColumn<QJsonObject>("referenceCase");
    int index = 0;
    for (const QJsonValue& value : m_reference.value(QStringLiteral("cases")).toArray()) {
        const QJsonObject referenceCase = value.toObject();
        const QString label = QStringLiteral("%1: %2").arg(index++).arg(
            referenceCase.value(QStringLiteral("text")).toString().left(40));
        QTest::newRow(qPrintable(label)) << referenceCase;
    }
}

void TestClipTokenizer::referenceCases()
{
    QFETCH(QJsonObject, referenceCase);
    const QString text = referenceCase.value(QStringLiteral("text")).toString();
    const std::vector<int> ids = m_tokenizer->encode(text);

    QCOMPARE(ids, intsOf(referenceCase.value(QStringLiteral("bpe_ids")).toArray()));
    QCOMPARE(int(ids.size()), referenceCase.value(QStringLiteral("n_bpe_tokens")).toInt());
    QStringList strings;
    for (int id : ids) {
        strings << m_tokenizer->tokenString(id);
    }
    QCOMPARE(QJsonArray::fromStringList(strings),
             referenceCase.value(QStringLiteral("bpe_token_strings")).toArray());

    const std::vector<int> padEnd = m_tokenizer->tokenize77(text);
    const std::vector<int> padZero = m_tokenizer->tokenize77(text, 0);
    QCOMPARE(padEnd, intsOf(referenceCase.value(QStringLiteral("input_ids_pad_eot")).toArray()));
    QCOMPARE(padZero, intsOf(referenceCase.value(QStringLiteral("input_ids_pad0")).toArray()));
    // The appended end token; a caption may hold "<|endoftext|>" itself.
    const int endPosition = 1 + std::min(int(ids.size()), 75);
    QCOMPARE(endPosition, referenceCase.value(QStringLiteral("eot_position")).toInt());
    QCOMPARE(padZero[size_t(endPosition)], 49407);

    QCOMPARE(m_tokenizer->decode(ids), referenceCase.value(QStringLiteral("decoded")).toString());
}

void TestClipTokenizer::cleanupBeyondReference_data()
{
    // Expected ids: openai/CLIP SimpleTokenizer.encode (ftfy as identity) under Python 3.11
    // (Unicode 14, html.unescape of the standard library) with this vocabulary.
    QTest::addColumn<QString>("text");
    QTest::addColumn<std::vector<int>>("expected");

    QTest::newRow("unescaped twice")
        << QStringLiteral("Fish &amp;amp; Chips") << std::vector<int>{2759, 261, 8855};
    QTest::newRow("numeric references")
        << QStringLiteral("caf&eacute; &#233; &#xE9; &#XE9 &#0; &#128; &#x110000; &#65535; &#x;")
        << std::vector<int>{15304, 4166, 4166, 4166, 39802, 6309, 39802, 5, 258, 343, 282};
    QTest::newRow("entity prefixes")
        << QStringLiteral("&notit; &ampx &AMP; &copy2023 &unknownname; & ;")
        << std::vector<int>{126, 361, 585, 282, 261,  343,  261,  5811, 273, 271,
                            273, 274, 261, 569, 1482, 1186, 1981, 282,  261, 282};
    QTest::newRow("final sigma") << QStringLiteral("ΟΔΟΣ ΣΟΦΙΑΣ Σ ΑΣ' ΑΣ.Β")
                                 << std::vector<int>{138, 123, 138, 112, 138, 123, 139, 480, 139,
                                                     225, 138, 123, 139, 228, 138, 117, 138, 109,
                                                     139, 480, 139, 481, 138, 109, 139, 480, 262,
                                                     138, 109, 139, 481, 269, 138, 366};
    QTest::newRow("dotted capital I")
        << QStringLiteral("İSTANBUL Iİ") << std::vector<int>{328, 16384, 11231, 2329, 16384};
    QTest::newRow("long s matches 's")
        << QStringLiteral("it'ſ a test") << std::vector<int>{585, 6, 129, 379, 320, 1628};
    QTest::newRow("unicode whitespace")
        << QStringLiteral("\u00a0a\u2003b\u3000c\u0085d\u2028e\u001cf\u001f ")
        << std::vector<int>{320, 321, 322, 323, 324, 472, 325};
    QTest::newRow("unicode digits") << QStringLiteral("١٢٣ ①② ⅷ 12")
                                    << std::vector<int>{149, 350, 149, 351, 149, 352, 158, 239, 510,
                                                        158, 239, 350, 158, 227, 371, 272, 273};
    QTest::newRow("combining marks")
        << QStringLiteral("e\u0301 \u0345x") << std::vector<int>{324, 136, 479, 343};
    QTest::newRow("emoji sequence")
        << QStringLiteral("👩\u200d👩\u200d👧 ok") << std::vector<int>{26304, 26304, 964, 356, 2481};
}

void TestClipTokenizer::cleanupBeyondReference()
{
    QFETCH(QString, text);
    QFETCH(std::vector<int>, expected);
    QCOMPARE(m_tokenizer->encode(text), expected);
}

void TestClipTokenizer::withoutHtmlUnescaping()
{
    // Hugging Face's CLIPTokenizer (webui SD1) keeps entities as text.
    ClipTokenizer tokenizer = *m_tokenizer;
    QVERIFY(tokenizer.unescapeHtml());
    const QString text = QStringLiteral("Tom &amp; Jerry &lt;3");
    QCOMPARE(tokenizer.encode(text), (std::vector<int>{2435, 261, 9164, 283, 274}));

    tokenizer.setUnescapeHtml(false);
    QCOMPARE(tokenizer.encode(text),
             (std::vector<int>{2435, 261, 6259, 282, 9164, 261, 3333, 282, 274}));
    QVERIFY(m_tokenizer->unescapeHtml());
}

void TestClipTokenizer::truncatesLongTexts()
{
    const QString text = QStringLiteral("a ").repeated(200);
    QCOMPARE(int(m_tokenizer->encode(text).size()), 200);

    const std::vector<int> ids = m_tokenizer->tokenize77(text);
    QCOMPARE(int(ids.size()), 77);
    QCOMPARE(ids.front(), 49406);
    QCOMPARE(ids[75], 320);
    QCOMPARE(ids[76], 49407);
}

void TestClipTokenizer::decodeRejectsUnknownIds()
{
    STUDIO_VERIFY_ERROR(m_tokenizer->decode({320, 49408}), "49408");
    STUDIO_VERIFY_ERROR(m_tokenizer->decode({-1}), "ids 0 to 49407");
}

void TestClipTokenizer::copiesAndThreadsAgree()
{
    std::vector<QString> texts;
    std::vector<std::vector<int>> expected;
    for (const QJsonValue& value : m_reference.value(QStringLiteral("cases")).toArray()) {
        texts.push_back(value.toObject().value(QStringLiteral("text")).toString());
        expected.push_back(intsOf(value.toObject().value(QStringLiteral("bpe_ids")).toArray()));
    }

    // A fresh tokenizer, so that the threads fill its cache concurrently.
    const ClipTokenizer shared(test::referencePath(kReferenceVocabulary));
    std::vector<int> failures(4, 0);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < failures.size(); ++t) {
        threads.emplace_back([&, t] {
            const ClipTokenizer copy = shared;
            for (int round = 0; round < 5; ++round) {
                for (size_t i = 0; i < texts.size(); ++i) {
                    const ClipTokenizer& tokenizer = (i + t) % 2 == 0 ? shared : copy;
                    failures[t] += tokenizer.encode(texts[i]) != expected[i] ? 1 : 0;
                }
            }
        });
    }
    for (std::thread& thread : threads) {
        thread.join();
    }
    QCOMPARE(failures, std::vector<int>(4, 0));
}

void TestClipTokenizer::verifyAllCases(const ClipTokenizer& tokenizer)
{
    QCOMPARE(tokenizer.vocabularySize(), 49408);
    for (const QJsonValue& value : m_reference.value(QStringLiteral("cases")).toArray()) {
        const QJsonObject referenceCase = value.toObject();
        const QString text = referenceCase.value(QStringLiteral("text")).toString();
        QCOMPARE(tokenizer.encode(text),
                 intsOf(referenceCase.value(QStringLiteral("bpe_ids")).toArray()));
    }
}

void TestClipTokenizer::plainTextVocabulary()
{
    QTemporaryDir folder;
    QVERIFY(folder.isValid());

    const QString plain = folder.filePath(QStringLiteral("bpe_simple_vocab_16e6.txt"));
    QVERIFY(writeFile(plain, m_mergesText));
    verifyAllCases(ClipTokenizer(plain));
    // A folder is searched, the .txt.gz preferred; a gzip file is recognised by its content.
    QCOMPARE(ClipTokenizer(folder.path()).sourcePath(),
             QDir(folder.path()).filePath(QStringLiteral("bpe_simple_vocab_16e6.txt")));
    const QString misnamed = folder.filePath(QStringLiteral("vocabulary.txt"));
    QVERIFY(QFile::copy(test::referencePath(kReferenceVocabulary), misnamed));
    verifyAllCases(ClipTokenizer(misnamed));

    // CRLF line ends read the same.
    const QString crlf = folder.filePath(QStringLiteral("crlf.txt"));
    QVERIFY(writeFile(crlf, QByteArray(m_mergesText).replace("\n", "\r\n")));
    verifyAllCases(ClipTokenizer(crlf));
}

void TestClipTokenizer::writeHuggingFaceLayout(const QString& folder)
{
    QJsonObject vocab;
    for (int id = 0; id < m_tokenizer->vocabularySize(); ++id) {
        vocab.insert(m_tokenizer->tokenString(id), id);
    }
    QVERIFY(writeFile(QDir(folder).filePath(QStringLiteral("vocab.json")),
                      QJsonDocument(vocab).toJson()));

    // Hugging Face's merges.txt: "#version: 0.2" and the 48894 merges CLIP uses.
    QList<QByteArray> lines = m_mergesText.split('\n').mid(0, 1 + 48894);
    lines[0] = "#version: 0.2";
    QVERIFY(
        writeFile(QDir(folder).filePath(QStringLiteral("merges.txt")), lines.join('\n') + '\n'));
}

void TestClipTokenizer::huggingFaceLayout()
{
    QTemporaryDir model;
    QVERIFY(model.isValid());
    const QString tokenizerFolder = model.filePath(QStringLiteral("tokenizer"));
    QVERIFY(QDir().mkpath(tokenizerFolder));
    writeHuggingFaceLayout(tokenizerFolder);

    const QString vocabJson = QDir(tokenizerFolder).filePath(QStringLiteral("vocab.json"));
    const QString merges = QDir(tokenizerFolder).filePath(QStringLiteral("merges.txt"));
    verifyAllCases(ClipTokenizer(vocabJson));
    verifyAllCases(ClipTokenizer(merges));
    verifyAllCases(ClipTokenizer(tokenizerFolder));
    // A diffusers model folder: its tokenizer/ subfolder.
    const ClipTokenizer fromModel(model.path());
    QCOMPARE(fromModel.sourcePath(), vocabJson);
    verifyAllCases(fromModel);

    for (int id : {0, 300, 512, 20000, 49405, 49406, 49407}) {
        QCOMPARE(fromModel.tokenString(id), m_tokenizer->tokenString(id));
    }
}

void TestClipTokenizer::loadErrors()
{
    QTemporaryDir folder;
    QVERIFY(folder.isValid());
    const QDir dir(folder.path());

    STUDIO_VERIFY_ERROR(ClipTokenizer(dir.filePath(QStringLiteral("missing.txt.gz"))),
                        "does not exist");
    STUDIO_VERIFY_ERROR(ClipTokenizer{folder.path()}, "holds no CLIP vocabulary");

    const QString truncated = dir.filePath(QStringLiteral("truncated.txt"));
    QVERIFY(writeFile(truncated, m_mergesText.left(2000)));
    STUDIO_VERIFY_ERROR(ClipTokenizer{truncated}, "the CLIP vocabulary has 48894");

    const QString broken = dir.filePath(QStringLiteral("broken.txt.gz"));
    QVERIFY(writeFile(broken, readFile(test::referencePath(kReferenceVocabulary)).left(5000)));
    STUDIO_VERIFY_ERROR(ClipTokenizer{broken}, "not a complete gzip file");

    const QString notUtf8 = dir.filePath(QStringLiteral("latin1.txt"));
    QVERIFY(writeFile(notUtf8, QByteArray("header\n\xff\xfe x\n")));
    STUDIO_VERIFY_ERROR(ClipTokenizer{notUtf8}, "not UTF-8");

    const QString damaged = dir.filePath(QStringLiteral("damaged.txt"));
    QByteArray damagedText = m_mergesText;
    damagedText.replace("\ni n\n", "\ni n x\n");
    QVERIFY(writeFile(damaged, damagedText));
    STUDIO_VERIFY_ERROR(ClipTokenizer{damaged}, "line 2 of");

    // The Hugging Face layout needs both files, and they must be CLIP's.
    const QString vocabJson = dir.filePath(QStringLiteral("vocab.json"));
    QVERIFY(writeFile(vocabJson, QByteArray("{\"a\": 0, \"b\": 1}")));
    STUDIO_VERIFY_ERROR(ClipTokenizer{vocabJson}, "merges.txt");
    QVERIFY(writeFile(dir.filePath(QStringLiteral("merges.txt")), "#version: 0.2\n"));
    STUDIO_VERIFY_ERROR(ClipTokenizer{vocabJson}, "holds 2 tokens, but the CLIP vocabulary has");
    QVERIFY(writeFile(vocabJson, QByteArray("[1, 2]")));
    STUDIO_VERIFY_ERROR(ClipTokenizer{vocabJson}, "is not a JSON object");

    // Smaller vocabularies load when the two files agree, so a truncated copy of CLIP's must
    // still be refused: merges.txt cut short, or vocab.json cut short.
    const QString pair = dir.filePath(QStringLiteral("pair"));
    QVERIFY(QDir().mkpath(pair));
    writeHuggingFaceLayout(pair);
    const QString pairMerges = QDir(pair).filePath(QStringLiteral("merges.txt"));
    const QByteArray mergesText = readFile(pairMerges);
    const qsizetype lineEnd = mergesText.lastIndexOf('\n', mergesText.size() / 3);
    QVERIFY(writeFile(pairMerges, mergesText.left(lineEnd + 1)));
    STUDIO_VERIFY_ERROR(ClipTokenizer{pair}, "holds 49408 tokens, but the CLIP vocabulary has");
    STUDIO_VERIFY_ERROR(ClipTokenizer{pair}, "one of the files is truncated");
    QVERIFY(writeFile(pairMerges, mergesText));
    const QString pairVocab = QDir(pair).filePath(QStringLiteral("vocab.json"));
    const QByteArray vocabText = readFile(pairVocab);
    QVERIFY(writeFile(pairVocab, vocabText.left(vocabText.size() / 2)));
    STUDIO_VERIFY_ERROR(ClipTokenizer{pair}, "is not a JSON object");
    // A vocab.json that lost tokens but is still valid JSON.
    QJsonObject fewer = QJsonDocument::fromJson(vocabText).object();
    fewer.remove(QStringLiteral("cat</w>"));
    QVERIFY(writeFile(pairVocab, QJsonDocument(fewer).toJson()));
    STUDIO_VERIFY_ERROR(ClipTokenizer{pair}, "damaged or truncated");
}

void TestClipTokenizer::locateFindsVocabularies()
{
    QTemporaryDir root;
    QVERIFY(root.isValid());
    const QDir dir(root.path());
    const ScopedEnvironment hubCache("HF_HUB_CACHE", QFile::encodeName(dir.filePath("hub")));

    // Next to a single-file checkpoint.
    QVERIFY(dir.mkpath(QStringLiteral("models")));
    const QString checkpoint = dir.filePath(QStringLiteral("models/sd15.safetensors"));
    const QString nextTo = dir.filePath(QStringLiteral("models/bpe_simple_vocab_16e6.txt.gz"));
    QVERIFY(QFile::copy(test::referencePath(kReferenceVocabulary), nextTo));
    QCOMPARE(ClipTokenizer::locate(checkpoint), nextTo);

    // In a diffusers model folder's tokenizer/.
    const QString diffusers = dir.filePath(QStringLiteral("diffusers-model"));
    QVERIFY(dir.mkpath(QStringLiteral("diffusers-model/tokenizer")));
    writeHuggingFaceLayout(QDir(diffusers).filePath(QStringLiteral("tokenizer")));
    QCOMPARE(ClipTokenizer::locate(diffusers),
             QDir(diffusers).filePath(QStringLiteral("tokenizer/vocab.json")));

    // In the Hugging Face cache: the snapshot refs/main names.
    const QString repository =
        dir.filePath(QStringLiteral("hub/models--openai--clip-vit-large-patch14"));
    QVERIFY(QDir().mkpath(repository + QStringLiteral("/snapshots/0123abcd")));
    QVERIFY(QDir().mkpath(repository + QStringLiteral("/refs")));
    QVERIFY(writeFile(repository + QStringLiteral("/refs/main"), "0123abcd"));
    writeHuggingFaceLayout(repository + QStringLiteral("/snapshots/0123abcd"));
    const QString cached = repository + QStringLiteral("/snapshots/0123abcd/vocab.json");
    QCOMPARE(ClipTokenizer::locate(), cached);
    QCOMPARE(ClipTokenizer::locate(dir.filePath(QStringLiteral("elsewhere/model.ckpt"))), cached);
    verifyAllCases(ClipTokenizer(ClipTokenizer::locate()));

    // A path set in the settings comes first, a file or a folder.
    QCOMPARE(ClipTokenizer::locate(checkpoint, nextTo), nextTo);
    QCOMPARE(ClipTokenizer::locate(diffusers, dir.filePath(QStringLiteral("models"))), nextTo);
}

void TestClipTokenizer::locateErrors()
{
    QTemporaryDir root;
    QVERIFY(root.isValid());
    const QDir dir(root.path());
    const QString hub = dir.filePath(QStringLiteral("empty-hub"));
    const ScopedEnvironment hubCache("HF_HUB_CACHE", QFile::encodeName(hub));
    QVERIFY(dir.mkpath(QStringLiteral("models")));
    const QString models = dir.filePath(QStringLiteral("models"));

    // The message names every place searched and where to put which file.
    const QString checkpoint = QDir(models).filePath(QStringLiteral("sd15.safetensors"));
    const QString message = test::errorMessageOf([&] { ClipTokenizer::locate(checkpoint); });
    QVERIFY2(message.startsWith(QStringLiteral("no CLIP tokenizer vocabulary found")),
             qPrintable(message));
    for (const QString& part :
         {QDir::toNativeSeparators(models), QDir::toNativeSeparators(hub),
          QStringLiteral("bpe_simple_vocab_16e6.txt.gz"), QStringLiteral("github.com/openai/CLIP"),
          QStringLiteral("next to the checkpoint"), QStringLiteral("vocab.json and merges.txt"),
          QDir::toNativeSeparators(QDir(models).filePath(QStringLiteral("tokenizer"))),
          QStringLiteral("clip-vit-large-patch14"),
          QStringLiteral("tokenizer path in the settings")}) {
        QVERIFY2(message.contains(part),
                 qPrintable(QStringLiteral("'%1' lacks '%2'").arg(message, part)));
    }

    STUDIO_VERIFY_ERROR(ClipTokenizer::locate(),
                        "set that folder as the tokenizer path in the settings");
    STUDIO_VERIFY_ERROR(
        ClipTokenizer::locate(checkpoint, models),
        QStringLiteral("the tokenizer path set in the settings, '%1', holds no CLIP "
                       "vocabulary")
            .arg(QDir::toNativeSeparators(models)));
    STUDIO_VERIFY_ERROR(ClipTokenizer::locate(QString(), dir.filePath(QStringLiteral("nowhere"))),
                        "nowhere");
}

QTEST_GUILESS_MAIN(TestClipTokenizer)
#include "TestClipTokenizer.moc"
