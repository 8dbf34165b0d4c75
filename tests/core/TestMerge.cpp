// Weighted merges of hypernetworks: every tensor of the output is the weighted sum of the
// inputs' tensors (checked against sums computed here from the loaded inputs), the output is an
// ordinary hypernetwork file, structures that do not line up are refused with a reason naming
// the files and the first difference, and a failed merge leaves no file behind.

#include "support/TestSupport.h"

#include "core/hypernetwork/HypernetworkFile.h"
#include "core/hypernetwork/HypernetworkTools.h"
#include "core/io/TorchArchive.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QObject>
#include <QTemporaryDir>

using namespace studio;

namespace {

HypernetworkConfig makeConfig(std::vector<int> sizes = {32, 64},
                              std::vector<double> layers = {1, 2, 1})
{
    HypernetworkConfig config;
    config.name = QStringLiteral("input");
    config.sizes = std::move(sizes);
    config.layerStructure = std::move(layers);
    config.activation = QStringLiteral("relu");
    config.weightInit = WeightInit::KaimingNormal;
    config.dropoutStructure.assign(config.layerStructure.size(), 0.0);
    config.dropoutStructureIntegerItems.assign(config.layerStructure.size(), true);
    return config;
}

// Creates a hypernetwork of `config` with weights drawn from `seed` and saves it.
QString writeHypernetwork(const QString& path, HypernetworkConfig config, uint64_t seed)
{
    config.initSeed = seed;
    config.name = QFileInfo(path).completeBaseName();
    saveHypernetwork(Hypernetwork::create(config), path);
    return path;
}

HypernetworkSummary summaryOf(const QString& path)
{
    return {path, loadHypernetwork(path).config(), 0, 0, QString()};
}

// Every (size, k|v, key) -> tensor of a file, so that inputs whose widths are listed in
// different orders still compare key by key.
std::map<QString, at::Tensor> namedTensors(const QString& path)
{
    std::map<QString, at::Tensor> tensors;
    const Hypernetwork hypernetwork = loadHypernetwork(path);
    for (const ModulePair& pair : hypernetwork.modules()) {
        for (const auto& [side, module] : {std::pair{"k", &pair.k}, std::pair{"v", &pair.v}}) {
            for (const auto& item : (*module)->named_parameters()) {
                tensors[QStringLiteral("%1/%2/%3")
                            .arg(pair.size)
                            .arg(QLatin1String(side), QString::fromStdString(item.key()))] =
                    item.value().detach().clone();
            }
        }
    }
    return tensors;
}

} // namespace

Q_DECLARE_METATYPE(studio::HypernetworkConfig)

class TestMerge : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void testWeightedSum();
    void testUnitWeightsReproduceAnInput();
    void testOutputIsAnOrdinaryFile();
    void testIncompatible_data();
    void testIncompatible();
    void testCompatibleVariants_data();
    void testCompatibleVariants();
    void testSameFileNamesUseWholePaths();
    void testBadInputs();

private:
    QString path(const QString& name) const { return m_dir->filePath(name); }

    std::unique_ptr<QTemporaryDir> m_dir;
};

void TestMerge::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
}

void TestMerge::testWeightedSum()
{
    HypernetworkConfig first = makeConfig();
    first.sdCheckpoint = QStringLiteral("0123456789");
    first.sdCheckpointName = QStringLiteral("first-model");
    first.optionalInfo = QStringLiteral("from the first");
    const QString a = writeHypernetwork(path(QStringLiteral("a.pt")), first, 1);
    HypernetworkConfig second = makeConfig();
    second.sdCheckpoint = QStringLiteral("9876543210");
    const QString b = writeHypernetwork(path(QStringLiteral("b.pt")), second, 2);
    // Same widths listed in another order: tensors still pair up by width.
    const QString c = writeHypernetwork(path(QStringLiteral("c.pt")), makeConfig({64, 32}), 3);

    const std::vector<MergeInput> inputs = {{a, 0.5}, {b, -0.25}, {c, 0.8}};
    const QString output = path(QStringLiteral("merged.pt"));
    const HypernetworkSummary summary =
        mergeHypernetworkFiles(inputs, output, QStringLiteral("blend"));

    const auto ta = namedTensors(a);
    const auto tb = namedTensors(b);
    const auto tc = namedTensors(c);
    const auto merged = namedTensors(output);
    QCOMPARE(merged.size(), ta.size());
    for (const auto& [key, tensor] : merged) {
        const at::Tensor expected = ta.at(key).to(at::kDouble) * 0.5 +
                                    tb.at(key).to(at::kDouble) * -0.25 +
                                    tc.at(key).to(at::kDouble) * 0.8;
        QCOMPARE(tensor.scalar_type(), at::kFloat);
        STUDIO_COMPARE_TENSORS(tensor, expected, 1e-7, 1e-6);
    }
    // Not trivially equal to an input (biases start at 0, so look at a weight).
    const QString weight = QStringLiteral("32/k/linear.0.weight");
    QVERIFY(!at::allclose(merged.at(weight), ta.at(weight)));
    QVERIFY(!at::allclose(merged.at(weight), tc.at(weight)));

    const Hypernetwork loaded = loadHypernetwork(output);
    QCOMPARE(loaded.config().name, QStringLiteral("blend"));
    QCOMPARE(loaded.config().step, int64_t(0));
    QCOMPARE(loaded.config().sdCheckpoint, first.sdCheckpoint);
    QCOMPARE(loaded.config().sdCheckpointName, first.sdCheckpointName);
    QCOMPARE(loaded.config().optionalInfo, first.optionalInfo);
    QCOMPARE(loaded.config().sizes, (std::vector<int>{32, 64}));

    QCOMPARE(summary.path, output);
    QCOMPARE(summary.config.name, QStringLiteral("blend"));
    QCOMPARE(summary.parameterCount, loaded.parameterCount());
    QCOMPARE(summary.fileBytes, int64_t(QFileInfo(output).size()));
    QCOMPARE(summary.shortHash, fileShortHash(output));
}

void TestMerge::testUnitWeightsReproduceAnInput()
{
    const QString a = writeHypernetwork(path(QStringLiteral("a.pt")), makeConfig(), 11);
    const QString b = writeHypernetwork(path(QStringLiteral("b.pt")), makeConfig(), 12);
    const QString output = path(QStringLiteral("same.pt"));
    mergeHypernetworkFiles({{a, 1.0}, {b, 0.0}}, output, QStringLiteral("same"));
    const auto ta = namedTensors(a);
    for (const auto& [key, tensor] : namedTensors(output)) {
        QVERIFY2(at::equal(tensor, ta.at(key)), qPrintable(key));
    }
}

void TestMerge::testOutputIsAnOrdinaryFile()
{
    const QString a = writeHypernetwork(path(QStringLiteral("a.pt")), makeConfig(), 21);
    const QString b = writeHypernetwork(path(QStringLiteral("b.pt")), makeConfig(), 22);
    const QString output = path(QStringLiteral("out.pt"));
    mergeHypernetworkFiles({{a, 0.5}, {b, 0.5}}, output, QStringLiteral("out"));

    // The webui's keys, int widths holding (k, v) tuples of state dicts.
    const py::ValuePtr root = io::readTorchFile(output);
    for (const char* key : {"step", "name", "layer_structure", "activation_func", "is_layer_norm",
                            "dropout_structure", "activate_output"}) {
        QVERIFY2(root->get(QString::fromLatin1(key)) != nullptr, key);
    }
    QCOMPARE(root->get(QStringLiteral("name"))->toStr(), QStringLiteral("out"));
    for (const int size : {32, 64}) {
        const py::ValuePtr modules = root->get(size);
        QVERIFY(modules != nullptr);
        QVERIFY(modules->is(py::Kind::Tuple));
        QCOMPARE(modules->items().size(), size_t(2));
    }

    // It loads, and runs like any hypernetwork.
    const Hypernetwork loaded = loadHypernetwork(output);
    const at::Tensor context = at::randn({1, 3, 32});
    const auto [k, v] = loaded.apply(context);
    QCOMPARE(test::shapeOf(k), QStringLiteral("[1, 3, 32]"));
    QVERIFY(!at::equal(k, context));
}

void TestMerge::testIncompatible_data()
{
    QTest::addColumn<HypernetworkConfig>("other");
    QTest::addColumn<QString>("reason");

    QTest::addRow("sizes") << makeConfig({32})
                           << QStringLiteral("'b.pt' has sizes 32 where "
                                             "'a.pt' has 32, 64");
    QTest::addRow("layer structure")
        << makeConfig({32, 64}, {1, 4, 1})
        << QStringLiteral("'b.pt' has layer structure 1, 4, 1 where 'a.pt' has 1, 2, 1");

    HypernetworkConfig activation = makeConfig();
    activation.activation = QStringLiteral("tanh");
    QTest::addRow("activation") << activation
                                << QStringLiteral("'b.pt' has activation tanh where 'a.pt' has "
                                                  "relu");

    HypernetworkConfig activateOutput = makeConfig();
    activateOutput.activateOutput = true;
    QTest::addRow("activate output") << activateOutput
                                     << QStringLiteral("'b.pt' has activate output yes where "
                                                       "'a.pt' has no");

    HypernetworkConfig layerNorm = makeConfig();
    layerNorm.layerNorm = true;
    QTest::addRow("layer norm") << layerNorm
                                << QStringLiteral("'b.pt' has layer norm yes where 'a.pt' has no");

    HypernetworkConfig dropout = makeConfig();
    dropout.useDropout = true;
    dropout.dropoutStructure = {0, 0.3, 0};
    dropout.dropoutStructureIntegerItems.clear();
    QTest::addRow("dropout layers") << dropout
                                    << QStringLiteral("'b.pt' has dropout structure 0, 0.3, 0 "
                                                      "where 'a.pt' has 0, 0, 0");

    HypernetworkConfig residual = makeConfig();
    residual.skipConnection = true;
    residual.writeExtensionKeys = true;
    QTest::addRow("residual blocks")
        << residual
        << QStringLiteral("'b.pt' has residual blocks (skip_connection) yes where 'a.pt' has no");
}

void TestMerge::testIncompatible()
{
    QFETCH(HypernetworkConfig, other);
    QFETCH(QString, reason);

    const QString a = writeHypernetwork(path(QStringLiteral("a.pt")), makeConfig(), 31);
    const QString b = writeHypernetwork(path(QStringLiteral("b.pt")), other, 32);
    const QString c = writeHypernetwork(path(QStringLiteral("c.pt")), makeConfig(), 33);

    // The first difference against the first input, wherever the odd one is in the list.
    const QString found = mergeIncompatibility({summaryOf(a), summaryOf(c), summaryOf(b)});
    QVERIFY2(found.startsWith(reason), qPrintable(found));
    QVERIFY(mergeIncompatibility({summaryOf(a), summaryOf(c)}).isEmpty());

    // Refused with the same reason, and nothing written: neither a new file nor over an old one.
    const QString fresh = path(QStringLiteral("fresh.pt"));
    STUDIO_VERIFY_ERROR(mergeHypernetworkFiles({{a, 0.5}, {b, 0.5}}, fresh, QStringLiteral("x")),
                        reason);
    QVERIFY(!QFileInfo::exists(fresh));
    const QString existing = path(QStringLiteral("existing.pt"));
    QVERIFY(QFile::copy(c, existing));
    const QByteArray before = [&] {
        QFile file(existing);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    }();
    STUDIO_VERIFY_ERROR(mergeHypernetworkFiles({{a, 0.5}, {b, 0.5}}, existing, QStringLiteral("x")),
                        reason);
    QFile file(existing);
    QVERIFY(file.open(QIODevice::ReadOnly));
    QCOMPARE(file.readAll(), before);
    // No temporary file left beside the target either.
    QCOMPARE(QDir(m_dir->path()).entryList(QDir::Files).size(), 4);
}

void TestMerge::testCompatibleVariants_data()
{
    QTest::addColumn<HypernetworkConfig>("first");
    QTest::addColumn<HypernetworkConfig>("other");

    // Dropout probabilities at the same places only matter while training.
    HypernetworkConfig dropoutA = makeConfig();
    dropoutA.useDropout = true;
    dropoutA.dropoutStructure = {0, 0.1, 0};
    HypernetworkConfig dropoutB = dropoutA;
    dropoutB.dropoutStructure = {0, 0.3, 0};
    QTest::addRow("dropout probabilities") << dropoutA << dropoutB;

    // "linear" and None both add no activation layer; activate output then changes nothing.
    HypernetworkConfig linear = makeConfig();
    linear.activation = QStringLiteral("linear");
    HypernetworkConfig none = makeConfig();
    none.activation.reset();
    none.activateOutput = true;
    QTest::addRow("linear and None") << linear << none;

    QTest::addRow("sizes in another order") << makeConfig({32, 64}) << makeConfig({64, 32});
}

void TestMerge::testCompatibleVariants()
{
    QFETCH(HypernetworkConfig, first);
    QFETCH(HypernetworkConfig, other);

    const QString a = writeHypernetwork(path(QStringLiteral("a.pt")), first, 41);
    const QString b = writeHypernetwork(path(QStringLiteral("b.pt")), other, 42);
    QCOMPARE(mergeIncompatibility({summaryOf(a), summaryOf(b)}), QString());
    const QString output = path(QStringLiteral("out.pt"));
    mergeHypernetworkFiles({{a, 0.5}, {b, 0.5}}, output, QStringLiteral("out"));
    // The output keeps the first input's settings.
    QCOMPARE(loadHypernetwork(output).config().dropoutStructure, first.dropoutStructure);
    QCOMPARE(loadHypernetwork(output).config().activation, first.activation);
}

void TestMerge::testSameFileNamesUseWholePaths()
{
    QVERIFY(QDir(m_dir->path()).mkpath(QStringLiteral("one")));
    QVERIFY(QDir(m_dir->path()).mkpath(QStringLiteral("two")));
    const QString a = writeHypernetwork(path(QStringLiteral("one/style.pt")), makeConfig(), 51);
    const QString b = writeHypernetwork(path(QStringLiteral("two/style.pt")),
                                        makeConfig({32, 64}, {1, 3, 1}), 52);
    const QString reason = mergeIncompatibility({summaryOf(a), summaryOf(b)});
    QVERIFY2(reason.contains(QDir::toNativeSeparators(b)), qPrintable(reason));
    QVERIFY2(reason.contains(QDir::toNativeSeparators(a)), qPrintable(reason));
}

void TestMerge::testBadInputs()
{
    const QString a = writeHypernetwork(path(QStringLiteral("a.pt")), makeConfig(), 61);
    const QString output = path(QStringLiteral("out.pt"));

    STUDIO_VERIFY_ERROR(mergeHypernetworkFiles({}, output, QStringLiteral("x")),
                        QStringLiteral("no input hypernetworks"));
    QCOMPARE(mergeIncompatibility({}),
             QStringLiteral("there is nothing to merge; add the hypernetworks to merge"));
    STUDIO_VERIFY_ERROR(mergeHypernetworkFiles({{a, 1.0}}, output, QStringLiteral("  ")),
                        QStringLiteral("the name is empty"));
    STUDIO_VERIFY_ERROR(
        mergeHypernetworkFiles({{a, 0.5}, {a, std::nan("")}}, output, QStringLiteral("x")),
        QStringLiteral("'%1': the merge weight nan is not a finite number")
            .arg(QDir::toNativeSeparators(a)));
    const QString missing = path(QStringLiteral("missing.pt"));
    STUDIO_VERIFY_ERROR(
        mergeHypernetworkFiles({{a, 0.5}, {missing, 0.5}}, output, QStringLiteral("x")),
        QDir::toNativeSeparators(missing));
    QFile notATorchFile(path(QStringLiteral("text.pt")));
    QVERIFY(notATorchFile.open(QIODevice::WriteOnly));
    notATorchFile.write("not a zip archive");
    notATorchFile.close();
    STUDIO_VERIFY_ERROR(mergeHypernetworkFiles({{a, 0.5}, {notATorchFile.fileName(), 0.5}}, output,
                                               QStringLiteral("x")),
                        QDir::toNativeSeparators(notATorchFile.fileName()));
    QVERIFY(!QFileInfo::exists(output));

    // One input is a scaled copy: allowed.
    mergeHypernetworkFiles({{a, 2.0}}, output, QStringLiteral("double"));
    const auto ta = namedTensors(a);
    for (const auto& [key, tensor] : namedTensors(output)) {
        STUDIO_COMPARE_TENSORS(tensor, ta.at(key) * 2.0, 0.0, 0.0);
    }
}

QTEST_GUILESS_MAIN(TestMerge)
#include "TestMerge.moc"
