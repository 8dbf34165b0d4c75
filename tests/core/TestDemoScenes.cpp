// The demo's procedural scenes (core/demo/ShapeScenes.h) and the style statistics that tell
// its two styles apart (core/demo/StyleStatistics.h).

#include "core/demo/ShapeScenes.h"
#include "core/demo/StyleStatistics.h"

#include "support/TestSupport.h"

#include <ATen/ATen.h>

#include <QObject>
#include <QRegularExpression>
#include <QSet>
#include <QTest>

using namespace studio;
using namespace studio::demo;

namespace {

constexpr int kSceneCount = 50;

// The mean colour of a window of the picture, as [3] floats.
at::Tensor meanColour(const at::Tensor& picture, int x0, int y0, int x1, int y1)
{
    return picture.slice(0, y0, y1).slice(1, x0, x1).to(at::kFloat).mean(at::IntArrayRef{0, 1});
}

} // namespace

class TestDemoScenes : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void scenesAreSeeded();
    void scenesVary();
    void captionsDescribeScenes();
    void allCaptionsAreDistinct();
    void plainPicturesShowTheScene();
    void stylesShareTheLayout();
    void renderRejectsBadSizes();
    void inkScoresApartFromPlain();
    void statisticsOfKnownPictures();
    void statisticsRejectNonImages();
    void styleNames();
};

void TestDemoScenes::scenesAreSeeded()
{
    for (uint64_t index : {0, 1, 17}) {
        const ShapeScene a = randomScene(7, index);
        const ShapeScene b = randomScene(7, index);
        QCOMPARE(sceneCaption(a), sceneCaption(b));
        for (SceneStyle style : {SceneStyle::Plain, SceneStyle::Ink}) {
            QVERIFY(renderScene(a, style).equal(renderScene(b, style)));
        }
    }
    // Another seed gives other scenes.
    int differing = 0;
    for (uint64_t index = 0; index < 20; ++index) {
        differing += sceneCaption(randomScene(7, index)) != sceneCaption(randomScene(8, index));
    }
    QVERIFY(differing >= 15);
}

void TestDemoScenes::scenesVary()
{
    QSet<int> shapes, counts, colours, backgrounds, placements;
    for (uint64_t index = 0; index < 200; ++index) {
        const ShapeScene scene = randomScene(1, index);
        QVERIFY(scene.colour != scene.background);
        QVERIFY(scene.instances.size() >= 1 && scene.instances.size() <= 3);
        shapes << int(scene.shape);
        counts << int(scene.instances.size());
        colours << scene.colour;
        backgrounds << scene.background;
        placements << int(scene.placement);
        for (const ShapeInstance& shape : scene.instances) {
            // Every shape lies inside the picture.
            QVERIFY(shape.x - shape.radius > 0.0 && shape.x + shape.radius < 1.0);
            QVERIFY(shape.y - shape.radius > 0.0 && shape.y + shape.radius < 1.0);
        }
    }
    QCOMPARE(shapes.size(), 4);
    QCOMPARE(counts.size(), 3);
    QCOMPARE(colours.size(), int(sceneColours().size()));
    QCOMPARE(backgrounds.size(), int(sceneColours().size()));
    QCOMPARE(placements.size(), 5);
}

void TestDemoScenes::captionsDescribeScenes()
{
    ShapeScene scene;
    scene.shape = Shape::Circle;
    scene.colour = 0;     // red
    scene.background = 2; // blue
    scene.instances = {ShapeInstance{}};
    QCOMPARE(sceneCaption(scene), QStringLiteral("a red circle on a blue background"));

    scene.shape = Shape::Square;
    scene.colour = 3;     // yellow
    scene.background = 6; // white
    scene.instances.resize(2);
    scene.placement = Placement::Left;
    QCOMPARE(sceneCaption(scene), QStringLiteral("two yellow squares on a white background, left"));
    scene.colour = 5; // orange
    scene.instances.resize(1);
    QCOMPARE(sceneCaption(scene), QStringLiteral("an orange square on a white background, left"));

    const QRegularExpression grammar(QStringLiteral(
        "^(a|an|two|three) (red|green|blue|yellow|purple|orange|white|black) "
        "(circle|square|triangle|star)s? on a \\w+ background(, (left|right|top|bottom))?$"));
    for (uint64_t index = 0; index < 100; ++index) {
        const QString caption = sceneCaption(randomScene(3, index));
        QVERIFY2(grammar.match(caption).hasMatch(), qPrintable(caption));
    }
}

void TestDemoScenes::allCaptionsAreDistinct()
{
    const QStringList captions = allSceneCaptions();
    QCOMPARE(captions.size(), 4 * 3 * 8 * 7 * 5);
    QCOMPARE(QSet<QString>(captions.begin(), captions.end()).size(), captions.size());
    for (uint64_t index = 0; index < 50; ++index) {
        QVERIFY(captions.contains(sceneCaption(randomScene(5, index))));
    }
}

void TestDemoScenes::plainPicturesShowTheScene()
{
    // One red circle in the centre of a blue picture: red at the centre, blue in the corners.
    ShapeScene scene;
    scene.colour = 0;
    scene.background = 2;
    scene.instances = {ShapeInstance{0.5, 0.5, 0.25, 0.0}};
    const at::Tensor picture = renderScene(scene, SceneStyle::Plain, 64);
    QCOMPARE(picture.sizes().vec(), (std::vector<int64_t>{64, 64, 3}));
    QCOMPARE(picture.scalar_type(), at::kByte);
    QVERIFY(meanColour(picture, 28, 28, 36, 36).equal(at::tensor({220.f, 30.f, 30.f})));
    QVERIFY(meanColour(picture, 0, 0, 6, 6).equal(at::tensor({30.f, 70.f, 220.f})));

    // Placed left: the right half is background only.
    scene.placement = Placement::Left;
    scene.instances = {ShapeInstance{0.27, 0.5, 0.18, 0.0}};
    const at::Tensor left = renderScene(scene, SceneStyle::Plain, 64);
    QVERIFY(meanColour(left, 34, 0, 64, 64).equal(at::tensor({30.f, 70.f, 220.f})));
    QVERIFY(meanColour(left, 15, 30, 20, 34).equal(at::tensor({220.f, 30.f, 30.f})));
}

void TestDemoScenes::stylesShareTheLayout()
{
    // The ink picture has the scene's ink colours where the plain one has its plain colours.
    ShapeScene scene;
    scene.colour = 4;     // purple
    scene.background = 3; // yellow
    scene.shape = Shape::Square;
    scene.instances = {ShapeInstance{0.5, 0.5, 0.25, 0.0}};
    const at::Tensor ink = renderScene(scene, SceneStyle::Ink, 64);
    const at::Tensor centre = meanColour(ink, 29, 29, 35, 35);
    const Rgb purple = sceneColours()[4].ink;
    for (int c = 0; c < 3; ++c) {
        QVERIFY(std::abs(centre[c].item<float>() - purple[size_t(c)]) < 4.0f);
    }
    // Outline pixels: the ink picture has dark ones around the square, the plain one none.
    const auto darkPixels = [](const at::Tensor& picture) {
        return picture.to(at::kInt).amax(2).lt(60).sum().item<int64_t>();
    };
    QVERIFY(darkPixels(ink) > 150);
    QCOMPARE(darkPixels(renderScene(scene, SceneStyle::Plain, 64)), int64_t(0));
    // Any size.
    QCOMPARE(renderScene(scene, SceneStyle::Ink, 128).size(0), 128);
}

void TestDemoScenes::renderRejectsBadSizes()
{
    STUDIO_VERIFY_ERROR(renderScene(randomScene(0, 0), SceneStyle::Plain, 8), "not 8");
    STUDIO_VERIFY_ERROR(renderScene(randomScene(0, 0), SceneStyle::Ink, 5000), "not 5000");
}

void TestDemoScenes::inkScoresApartFromPlain()
{
    std::vector<at::Tensor> plain, ink;
    int inkEdgier = 0, inkCloser = 0;
    for (uint64_t index = 0; index < kSceneCount; ++index) {
        const ShapeScene scene = randomScene(11, index);
        plain.push_back(renderScene(scene, SceneStyle::Plain));
        ink.push_back(renderScene(scene, SceneStyle::Ink));
        inkEdgier += edgeDensity(ink.back()) > edgeDensity(plain.back());
        inkCloser += paletteDistance(ink.back()) < paletteDistance(plain.back());
    }
    const StyleStatistics plainStats = styleStatistics(at::stack(plain));
    const StyleStatistics inkStats = styleStatistics(at::stack(ink));
    qInfo("edge density: plain %.4f, ink %.4f; palette distance: plain %.4f, ink %.4f",
          plainStats.edgeDensity, inkStats.edgeDensity, plainStats.paletteDistance,
          inkStats.paletteDistance);
    // On average by a wide margin, and nearly always scene by scene (a dark background hides
    // the outline of a dark shape, and with it some of the edges).
    QVERIFY2(inkEdgier >= kSceneCount * 9 / 10, qPrintable(QString::number(inkEdgier)));
    QCOMPARE(inkCloser, kSceneCount);
    QVERIFY(inkStats.edgeDensity > 2.5 * plainStats.edgeDensity);
    QVERIFY(inkStats.paletteDistance * 4.0 < plainStats.paletteDistance);
}

void TestDemoScenes::statisticsOfKnownPictures()
{
    // A flat picture has no edges; a vertical step of 100 has two columns of them.
    at::Tensor flat = at::full({10, 10, 3}, 128, at::kByte);
    QCOMPARE(edgeDensity(flat), 0.0);
    at::Tensor step = flat.clone();
    step.slice(1, 5, 10).fill_(228);
    // Interior 8 x 8: columns 4 and 5 of the image (3 and 4 of the interior) see the step.
    QCOMPARE(edgeDensity(step), 2.0 / 8.0);
    QCOMPARE(edgeDensity(step, 120.0), 0.0);
    // A batch averages its pictures.
    QCOMPARE(edgeDensity(at::stack({flat, step})), 1.0 / 8.0);

    // A palette colour is at distance 0; pure black is at the outline colour's distance.
    const Rgb pastel = inkPalette().front();
    at::Tensor inPalette = at::empty({4, 4, 3}, at::kByte);
    for (int c = 0; c < 3; ++c) {
        inPalette.select(2, c).fill_(int(pastel[size_t(c)]));
    }
    QCOMPARE(paletteDistance(inPalette), 0.0);
    const double black = paletteDistance(at::zeros({4, 4, 3}, at::kByte));
    QVERIFY(qAbs(black - std::sqrt(24.0 * 24 + 22 * 22 + 28 * 28) / 255.0) < 1e-6);
}

void TestDemoScenes::statisticsRejectNonImages()
{
    STUDIO_VERIFY_ERROR(edgeDensity(at::zeros({8, 8, 3}, at::kFloat)), "uint8 RGB");
    STUDIO_VERIFY_ERROR(paletteDistance(at::zeros({8, 8}, at::kByte)), "uint8 RGB");
    STUDIO_VERIFY_ERROR(edgeDensity(at::zeros({2, 8, 3}, at::kByte)), "at least 3 x 3");
}

void TestDemoScenes::styleNames()
{
    QCOMPARE(parseSceneStyle(QStringLiteral("Ink")), SceneStyle::Ink);
    QCOMPARE(parseSceneStyle(QStringLiteral("plain")), SceneStyle::Plain);
    QCOMPARE(sceneStyleName(SceneStyle::Ink), QStringLiteral("ink"));
    STUDIO_VERIFY_ERROR(parseSceneStyle(QStringLiteral("watercolour")), "plain or ink");
}

QTEST_GUILESS_MAIN(TestDemoScenes)
#include "TestDemoScenes.moc"
