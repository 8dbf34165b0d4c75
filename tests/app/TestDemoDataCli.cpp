// hnstudio demo-data as a user runs it: the pictures and captions it writes, their
// determinism per seed, the vocabulary option, and its usage errors.

#include "core/io/PngFile.h"
#include "core/text/ClipTokenizer.h"

#include "support/CliRunner.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QFile>
#include <QObject>
#include <QTemporaryDir>
#include <QTest>

using namespace studio;
using studio::test::runHnstudio;

namespace {

QByteArray readFile(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

QStringList filesIn(const QString& folder)
{
    return QDir(folder).entryList(QDir::Files, QDir::Name);
}

} // namespace

class TestDemoDataCli : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void writesCaptionedPictures();
    void sameSeedSameFiles();
    void writesVocabulary();
    void usageErrors();
};

void TestDemoDataCli::writesCaptionedPictures()
{
    QTemporaryDir root;
    QVERIFY(root.isValid());
    const QString folder = root.filePath(QStringLiteral("ink"));
    const test::CliRun run =
        runHnstudio({QStringLiteral("demo-data"), folder, QStringLiteral("--style"),
                     QStringLiteral("ink"), QStringLiteral("--count"), QStringLiteral("3"),
                     QStringLiteral("--size"), QStringLiteral("48")});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QVERIFY(run.out.contains(QStringLiteral("wrote 3 ink pictures")));
    QCOMPARE(filesIn(folder), (QStringList{"00000.png", "00000.txt", "00001.png", "00001.txt",
                                           "00002.png", "00002.txt"}));
    for (int i = 0; i < 3; ++i) {
        const QString stem = QDir(folder).filePath(QStringLiteral("0000%1").arg(i));
        const at::Tensor picture = io::readImageRgb(stem + QStringLiteral(".png"));
        QCOMPARE(picture.sizes().vec(), (std::vector<int64_t>{48, 48, 3}));
        const QString caption = QString::fromUtf8(readFile(stem + QStringLiteral(".txt")));
        QVERIFY2(caption.endsWith(QLatin1Char('\n')), qPrintable(caption));
        QVERIFY2(caption.contains(QStringLiteral(" background")), qPrintable(caption));
    }
}

void TestDemoDataCli::sameSeedSameFiles()
{
    QTemporaryDir root;
    QVERIFY(root.isValid());
    const auto generate = [&](const QString& name, const QString& seed) {
        const QString folder = root.filePath(name);
        const test::CliRun run =
            runHnstudio({QStringLiteral("demo-data"), folder, QStringLiteral("--count"),
                         QStringLiteral("4"), QStringLiteral("--seed"), seed});
        return run.exitCode == 0 ? folder : QString();
    };
    const QString a = generate(QStringLiteral("a"), QStringLiteral("5"));
    const QString b = generate(QStringLiteral("b"), QStringLiteral("5"));
    const QString c = generate(QStringLiteral("c"), QStringLiteral("6"));
    QVERIFY(!a.isEmpty() && !b.isEmpty() && !c.isEmpty());
    QCOMPARE(filesIn(a).size(), 8);
    int differing = 0;
    for (const QString& name : filesIn(a)) {
        QCOMPARE(readFile(QDir(a).filePath(name)), readFile(QDir(b).filePath(name)));
        differing += readFile(QDir(a).filePath(name)) != readFile(QDir(c).filePath(name));
    }
    QVERIFY(differing >= 6);
}

void TestDemoDataCli::writesVocabulary()
{
    QTemporaryDir root;
    QVERIFY(root.isValid());
    const QString vocab = root.filePath(QStringLiteral("tokenizer"));
    const test::CliRun run =
        runHnstudio({QStringLiteral("demo-data"), QStringLiteral("--vocab-out"), vocab});
    QVERIFY2(run.exitCode == 0, qPrintable(run.err));
    QVERIFY(run.out.contains(QStringLiteral("wrote a vocabulary of")));
    const ClipTokenizer tokenizer(vocab);
    const std::vector<int> ids =
        tokenizer.encode(QStringLiteral("two yellow squares on a white background, left"));
    QCOMPARE(ids.size(), size_t(9));
    // hnstudio tokenize reads it too, with its own start and end ids.
    const test::CliRun tokenized =
        runHnstudio({QStringLiteral("tokenize"), QStringLiteral("--vocab"), vocab,
                     QStringLiteral("a red circle on a blue background")});
    QVERIFY2(tokenized.exitCode == 0, qPrintable(tokenized.err));
    QVERIFY(tokenized.out.contains(QString::number(tokenizer.startOfTextId())));
}

void TestDemoDataCli::usageErrors()
{
    QTemporaryDir root;
    QVERIFY(root.isValid());
    const QString folder = root.path();
    const QStringList base = {QStringLiteral("demo-data"), folder};
    QCOMPARE(runHnstudio({QStringLiteral("demo-data")}).exitCode, 2);
    QCOMPARE(runHnstudio(base + QStringList{"--style", "oil"}).exitCode, 2);
    QCOMPARE(runHnstudio(base + QStringList{"--count", "0"}).exitCode, 2);
    QCOMPARE(runHnstudio(base + QStringList{"--size", "8"}).exitCode, 2);
    QCOMPARE(runHnstudio(base + QStringList{"--seed", "x"}).exitCode, 2);

    // A folder with other files is refused unless forced.
    QFile other(QDir(folder).filePath(QStringLiteral("notes.txt")));
    QVERIFY(other.open(QIODevice::WriteOnly));
    other.close();
    const test::CliRun refused = runHnstudio(base);
    QCOMPARE(refused.exitCode, 2);
    QVERIFY(refused.err.contains(QStringLiteral("--force")));
    QCOMPARE(runHnstudio(base + QStringList{"--count", "1", "--force"}).exitCode, 0);
    QVERIFY(QFile::exists(QDir(folder).filePath(QStringLiteral("00000.png"))));

    // Writing where a file stands is a failure, not a usage error.
    const test::CliRun failed =
        runHnstudio({QStringLiteral("demo-data"), QDir(folder).filePath("notes.txt/sub")});
    QCOMPARE(failed.exitCode, 1);
}

QTEST_GUILESS_MAIN(TestDemoDataCli)
#include "TestDemoDataCli.moc"
