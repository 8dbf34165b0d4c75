// Hypernetwork options: parsing, validation messages, layer widths, and every activation.

#include "support/TestSupport.h"

#include "core/hypernetwork/Activation.h"
#include "core/hypernetwork/Hypernetwork.h"

#include <torch/utils.h>

#include <QObject>

using namespace studio;

class TestHypernetworkConfig : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testInvalidConfigurationsAreExplained_data();
    void testInvalidConfigurationsAreExplained();
    void testLoadedFilesAreCheckedLessStrictly();
    void testListParsingNamesTheField();
    void testLayerWidthsTruncateLikePython();
    void testEveryOfferedActivationRuns();
    void testActivationNames();
    void testModuleLayoutFollowsTheWebui_data();
    void testModuleLayoutFollowsTheWebui();
};

void TestHypernetworkConfig::testInvalidConfigurationsAreExplained_data()
{
    QTest::addColumn<QString>("layers");
    QTest::addColumn<QString>("dropout");
    QTest::addColumn<QString>("activation");
    QTest::addColumn<QString>("sizes");
    QTest::addColumn<QString>("expected");

    QTest::addRow("structure not starting with 1") << "2, 2, 1"
                                                   << "0, 0, 0"
                                                   << "relu"
                                                   << "768"
                                                   << "must start and end with 1";
    QTest::addRow("structure not ending with 1") << "1, 2, 2"
                                                 << "0, 0, 0"
                                                 << "relu"
                                                 << "768"
                                                 << "must start and end with 1";
    QTest::addRow("structure too short") << "1"
                                         << "0"
                                         << "relu"
                                         << "768"
                                         << "at least two";
    QTest::addRow("negative multiplier") << "1, -2, 1"
                                         << "0, 0, 0"
                                         << "relu"
                                         << "768"
                                         << "positive number";
    QTest::addRow("dropout too short") << "1, 2, 1"
                                       << "0, 0.3"
                                       << "relu"
                                       << "768"
                                       << "has 2 entries but layer structure";
    QTest::addRow("dropout too long") << "1, 2, 1"
                                      << "0, 0.3, 0.3, 0"
                                      << "relu"
                                      << "768"
                                      << "has 4 entries";
    QTest::addRow("dropout of one") << "1, 2, 1"
                                    << "0, 1, 0"
                                    << "relu"
                                    << "768"
                                    << "(0, 1)";
    QTest::addRow("negative dropout") << "1, 2, 1"
                                      << "0, -0.1, 0"
                                      << "relu"
                                      << "768"
                                      << "(0, 1)";
    QTest::addRow("dropout not starting with 0") << "1, 2, 1"
                                                 << "0.1, 0.2, 0"
                                                 << "relu"
                                                 << "768"
                                                 << "must start and end with 0";
    QTest::addRow("dropout after the output") << "1, 2, 1"
                                              << "0, 0.2, 0.1"
                                              << "relu"
                                              << "768"
                                              << "must start and end with 0";
    QTest::addRow("unknown activation") << "1, 2, 1"
                                        << "0, 0, 0"
                                        << "wobble"
                                        << "768"
                                        << "unknown activation 'wobble'";
    QTest::addRow("glu") << "1, 2, 1"
                         << "0, 0, 0"
                         << "glu"
                         << "768"
                         << "halves the layer width";
    QTest::addRow("threshold") << "1, 2, 1"
                               << "0, 0, 0"
                               << "threshold"
                               << "768"
                               << "needs arguments";
    QTest::addRow("zero width layer") << "1, 0.001, 1"
                                      << "0, 0, 0"
                                      << "relu"
                                      << "320"
                                      << "width 0 for module size 320";
    QTest::addRow("duplicate size") << "1, 2, 1"
                                    << "0, 0, 0"
                                    << "relu"
                                    << "768, 768"
                                    << "listed twice";
    QTest::addRow("zero size") << "1, 2, 1"
                               << "0, 0, 0"
                               << "relu"
                               << "0"
                               << "not a valid width";
}

void TestHypernetworkConfig::testInvalidConfigurationsAreExplained()
{
    QFETCH(QString, layers);
    QFETCH(QString, dropout);
    QFETCH(QString, activation);
    QFETCH(QString, sizes);
    QFETCH(QString, expected);

    HypernetworkConfig config;
    config.layerStructure = parseNumberList(layers, QStringLiteral("layers"));
    config.dropoutStructure = parseNumberList(dropout, QStringLiteral("dropout"));
    config.activation = activation;
    config.sizes = parseSizeList(sizes, QStringLiteral("sizes"));
    STUDIO_VERIFY_ERROR(validate(config, /*forCreation=*/true), expected);
    STUDIO_VERIFY_ERROR(Hypernetwork::create(config), expected);
}

void TestHypernetworkConfig::testLoadedFilesAreCheckedLessStrictly()
{
    // The webui loads these (it ignores extra dropout entries and never checks the ends).
    HypernetworkConfig config;
    config.sizes = {16};
    config.dropoutStructure = {0.1, 0.2, 0.0, 0.5};
    validate(config, /*forCreation=*/false);
    QCOMPARE(Hypernetwork::build(config).parameterCount(),
             int64_t(16 * 32 + 32 + 32 * 16 + 16) * 2);
}

void TestHypernetworkConfig::testListParsingNamesTheField()
{
    STUDIO_VERIFY_ERROR(parseNumberList(QStringLiteral("1, x, 1"), QStringLiteral("--layers")),
                        "--layers: 'x' is not a number");
    STUDIO_VERIFY_ERROR(parseSizeList(QStringLiteral("768, 1.5"), QStringLiteral("--sizes")),
                        "--sizes: '1.5' is not a whole number");
    STUDIO_VERIFY_ERROR(parseWeightInit(QStringLiteral("Uniform")), "KaimingNormal");
    QCOMPARE(parseWeightInit(QStringLiteral("xaviernormal")), WeightInit::XavierNormal);
    QCOMPARE(parseNumberList(QStringLiteral(" 1,1.5 , 1"), QString()),
             (std::vector<double>{1.0, 1.5, 1.0}));
}

void TestHypernetworkConfig::testLayerWidthsTruncateLikePython()
{
    HypernetworkConfig config;
    config.layerStructure = {1.0, 1.3, 0.004, 1.0};
    QCOMPARE(config.layerWidths(10), (std::vector<int>{10, 13, 0, 10}));
    QCOMPARE(config.layerWidths(320), (std::vector<int>{320, 416, 1, 320}));
    config.layerStructure = {1.0, 0.1, 1.0};
    QCOMPARE(config.layerWidths(768), (std::vector<int>{768, 76, 768}));
}

void TestHypernetworkConfig::testEveryOfferedActivationRuns()
{
    torch::manual_seed(1);
    const at::Tensor input = at::randn({2, 3, 8});
    for (const QString& name : activationNames()) {
        Activation activation(parseActivation(name));
        activation->eval();
        torch::NoGradGuard noGrad;
        const at::Tensor output = activation->forward(input);
        QCOMPARE(test::shapeOf(output), test::shapeOf(input));
        QVERIFY2(output.isfinite().all().item<bool>(), qPrintable(name));
    }

    // Spot checks against PyTorch's defaults.
    const at::Tensor x = at::tensor({-2.0f, -0.25f, 0.25f, 2.0f});
    auto run = [&](const char* name) { return Activation(parseActivation(name))->forward(x); };
    QVERIFY(at::allclose(run("swish"), at::hardswish(x)));
    QVERIFY(at::allclose(run("leakyrelu"), at::where(x > 0, x, x * 0.01)));
    QVERIFY(at::allclose(run("softshrink"), at::tensor({-1.5f, 0.0f, 0.0f, 1.5f})));
    QVERIFY(at::allclose(run("relu6"), at::tensor({0.0f, 0.0f, 0.25f, 2.0f})));
    QVERIFY(at::allclose(run("linear"), x));
    Activation prelu(ActivationKind::PReLU);
    QCOMPARE(prelu->parameters().size(), size_t(1));
    QCOMPARE(prelu->parameters().front().item<float>(), 0.25f);

    // Legacy implicit softmax dimension: dim 0 for 3-D input.
    const at::Tensor softmax = run("softmax");
    QVERIFY(
        at::allclose(Activation(ActivationKind::Softmax)->forward(input), at::softmax(input, 0)));
    Q_UNUSED(softmax);
}

void TestHypernetworkConfig::testActivationNames()
{
    const QStringList names = activationNames();
    QCOMPARE(names.front(), QStringLiteral("linear"));
    QVERIFY(names.contains(QStringLiteral("swish")));
    QVERIFY(!names.contains(QStringLiteral("hardswish"))); // hidden, as in the webui
    QVERIFY(!names.contains(QStringLiteral("glu")));
    QCOMPARE(parseActivation(QStringLiteral("ReLU")), ActivationKind::ReLU);
    QCOMPARE(parseActivation(QStringLiteral("swish")), ActivationKind::Hardswish);
}

void TestHypernetworkConfig::testModuleLayoutFollowsTheWebui_data()
{
    // Spec hypernetworks.md 1.3: the weight-bearing Sequential indices of each layout.
    QTest::addColumn<QString>("layers");
    QTest::addColumn<QString>("activation");
    QTest::addColumn<bool>("layerNorm");
    QTest::addColumn<QString>("dropout");
    QTest::addColumn<bool>("activateOutput");
    QTest::addColumn<QStringList>("keys");
    QTest::addRow("linear") << "1, 2, 1"
                            << "linear" << false << "0, 0, 0" << false << QStringList{"0", "1"};
    QTest::addRow("relu") << "1, 2, 1"
                          << "relu" << false << "0, 0, 0" << false << QStringList{"0", "2"};
    QTest::addRow("relu dropout") << "1, 2, 1"
                                  << "relu" << false << "0, 0.3, 0" << false
                                  << QStringList{"0", "3"};
    QTest::addRow("relu norm dropout")
        << "1, 2, 1"
        << "relu" << true << "0, 0.3, 0" << false << QStringList{"0", "2", "4", "5"};
    QTest::addRow("relu output") << "1, 2, 1"
                                 << "relu" << false << "0, 0, 0" << true << QStringList{"0", "2"};
    QTest::addRow("swish deep dropout")
        << "1, 2, 2, 1"
        << "swish" << false << "0, 0.3, 0.3, 0" << false << QStringList{"0", "3", "6"};
}

void TestHypernetworkConfig::testModuleLayoutFollowsTheWebui()
{
    QFETCH(QString, layers);
    QFETCH(QString, activation);
    QFETCH(bool, layerNorm);
    QFETCH(QString, dropout);
    QFETCH(bool, activateOutput);
    QFETCH(QStringList, keys);

    HypernetworkConfig config;
    config.sizes = {8};
    config.layerStructure = parseNumberList(layers, QString());
    config.dropoutStructure = parseNumberList(dropout, QString());
    config.activation = activation;
    config.layerNorm = layerNorm;
    config.activateOutput = activateOutput;
    const Hypernetwork hypernetwork = Hypernetwork::create(config);

    QStringList indices;
    for (const auto& item : hypernetwork.modules().front().k->named_parameters()) {
        const QString index = QString::fromStdString(item.key()).section(QLatin1Char('.'), 1, 1);
        if (!indices.contains(index)) {
            indices << index;
        }
    }
    QCOMPARE(indices, keys);
}

QTEST_GUILESS_MAIN(TestHypernetworkConfig)
#include "TestHypernetworkConfig.moc"
