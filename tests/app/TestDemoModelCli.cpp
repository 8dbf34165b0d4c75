// hnstudio demo-model as a user runs it: a short training run, then `info` and `generate` on the
// model it wrote.

#include "support/CliRunner.h"

#include <QDir>
#include <QFile>
#include <QObject>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QTest>

using studio::test::runHnstudio;

class TestDemoModelCli : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void trainsThenInfoAndGenerate()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString out = dir.filePath(QStringLiteral("model"));
        const auto train = runHnstudio(
            {QStringLiteral("demo-model"), out, QStringLiteral("--steps"), QStringLiteral("4"),
             QStringLiteral("--size"), QStringLiteral("16"), QStringLiteral("--batch"),
             QStringLiteral("4"), QStringLiteral("--threads"), QStringLiteral("2"),
             QStringLiteral("--log-every"), QStringLiteral("2")});
        QVERIFY2(train.exitCode == 0, qPrintable(train.err));
        QVERIFY2(train.err.contains(QStringLiteral("vae step 2/4 loss")), qPrintable(train.err));
        QVERIFY2(train.err.contains(QStringLiteral("unet step 4/4 loss")), qPrintable(train.err));
        const QString checkpoint = QDir(out).filePath(QStringLiteral("demo.safetensors"));
        QVERIFY(QFile::exists(checkpoint));

        const auto info = runHnstudio({QStringLiteral("info"), checkpoint});
        QVERIFY2(info.exitCode == 0, qPrintable(info.err));
        QVERIFY2(info.out.contains(QStringLiteral("SD1")), qPrintable(info.out));

        const QString image = dir.filePath(QStringLiteral("x.png"));
        const auto generate =
            runHnstudio({QStringLiteral("generate"), QStringLiteral("--model"), checkpoint,
                         QStringLiteral("--tokenizer"), out, QStringLiteral("--prompt"),
                         QStringLiteral("a red circle on a blue background"),
                         QStringLiteral("--steps"), QStringLiteral("3"), QStringLiteral("--seed"),
                         QStringLiteral("1"), QStringLiteral("-o"), image});
        QVERIFY2(generate.exitCode == 0, qPrintable(generate.err));
        QVERIFY(QFile::exists(image));

        const auto bad = runHnstudio(
            {QStringLiteral("demo-model"), out, QStringLiteral("--size"), QStringLiteral("40")});
        QVERIFY(bad.exitCode != 0);
        QVERIFY2(bad.err.contains(QStringLiteral("--size")), qPrintable(bad.err));
    }
};

QTEST_GUILESS_MAIN(TestDemoModelCli)
#include "TestDemoModelCli.moc"
