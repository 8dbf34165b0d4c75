// Scene descriptions are drawn with OpenCV in RGB channel order (OpenCV does not care which
// channel is which when drawing), with 4 bits of sub-pixel precision so that shapes keep their
// proportions at 64 pixels.

#include "core/demo/ShapeScenes.h"

#include "core/Error.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace studio::demo {

namespace {

constexpr int kShift = 4; // sub-pixel bits of the drawing calls
constexpr double kPi = 3.14159265358979323846;
constexpr int kMinSize = 16;
constexpr int kMaxSize = 4096;

const Rgb kOutline = {24, 22, 28};

// SplitMix64 (as core/data/Dataset.cpp): <random>'s distributions differ between compilers.
uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

class SplitMix64
{
public:
    explicit SplitMix64(uint64_t seed) : m_state(seed) {}

    uint64_t next()
    {
        m_state += 0x9e3779b97f4a7c15ULL;
        return mix(m_state);
    }
    int below(int bound) { return int(next() % uint64_t(bound)); }
    double uniform(double low, double high)
    {
        return low + (high - low) * double(next() >> 11) * 0x1.0p-53;
    }

private:
    uint64_t m_state;
};

const char* shapeWord(Shape shape)
{
    switch (shape) {
    case Shape::Circle:
        return "circle";
    case Shape::Square:
        return "square";
    case Shape::Triangle:
        return "triangle";
    case Shape::Star:
        return "star";
    }
    return "";
}

const char* placementSuffix(Placement placement)
{
    switch (placement) {
    case Placement::Center:
        return "";
    case Placement::Left:
        return ", left";
    case Placement::Right:
        return ", right";
    case Placement::Top:
        return ", top";
    case Placement::Bottom:
        return ", bottom";
    }
    return "";
}

// Shapes sit along a line through the placement's region: a column at the left and right, a
// row elsewhere; fewer shapes are drawn larger.
std::vector<ShapeInstance> layOut(Placement placement, int count, SplitMix64& random)
{
    const bool column = placement == Placement::Left || placement == Placement::Right;
    double x = 0.5;
    double y = 0.5;
    x = placement == Placement::Left ? 0.27 : (placement == Placement::Right ? 0.73 : x);
    y = placement == Placement::Top ? 0.27 : (placement == Placement::Bottom ? 0.73 : y);
    const double single = placement == Placement::Center ? 0.26 : 0.18;
    const double radius = count == 1 ? single : (count == 2 ? 0.15 : 0.11);
    const double spacing = count == 2 ? 0.36 : 0.26;

    std::vector<ShapeInstance> instances;
    for (int i = 0; i < count; ++i) {
        const double offset = (i - (count - 1) / 2.0) * spacing;
        ShapeInstance instance;
        instance.x = x + (column ? 0.0 : offset) + random.uniform(-0.02, 0.02);
        instance.y = y + (column ? offset : 0.0) + random.uniform(-0.02, 0.02);
        instance.radius = radius * random.uniform(0.92, 1.08);
        instance.angle = random.uniform(-0.15, 0.15);
        instances.push_back(instance);
    }
    return instances;
}

cv::Scalar scalar(const Rgb& colour)
{
    return cv::Scalar(colour[0], colour[1], colour[2]);
}

cv::Point fixedPoint(double x, double y)
{
    return cv::Point(int(std::lround(x * (1 << kShift))), int(std::lround(y * (1 << kShift))));
}

// The outline of a non-circular shape, in pixels.
std::vector<cv::Point> polygon(Shape shape, const ShapeInstance& instance, int size)
{
    const double cx = instance.x * size;
    const double r = instance.radius * size;
    // A triangle's centroid sits low in its circle: lifting it keeps it centred visually.
    const double cy = instance.y * size + (shape == Shape::Triangle ? 0.12 * r : 0.0);
    int corners = 4;
    double start = -kPi / 4; // a square's first corner at the top left
    if (shape == Shape::Triangle || shape == Shape::Star) {
        corners = shape == Shape::Triangle ? 3 : 10;
        start = -kPi / 2;
    }
    // Corners past the radius, so that polygons look about as large as a circle of radius r.
    const double outer = shape == Shape::Square ? 1.15 * r : 1.1 * r;
    std::vector<cv::Point> points;
    for (int i = 0; i < corners; ++i) {
        const double reach = shape == Shape::Star && i % 2 == 1 ? 0.45 * r : outer;
        const double angle = start + instance.angle + 2 * kPi * i / corners;
        points.push_back(fixedPoint(cx + reach * std::cos(angle), cy + reach * std::sin(angle)));
    }
    return points;
}

// A filled shape; with `outline` > 0, its outline of that thickness in `outlineColour` on top.
void drawShape(cv::Mat& image, Shape shape, const ShapeInstance& instance, const Rgb& fill,
               int outline, const Rgb& outlineColour)
{
    const int size = image.cols;
    if (shape == Shape::Circle) {
        const cv::Point centre = fixedPoint(instance.x * size, instance.y * size);
        const int radius = int(std::lround(instance.radius * size * (1 << kShift)));
        cv::circle(image, centre, radius, scalar(fill), cv::FILLED, cv::LINE_AA, kShift);
        if (outline > 0) {
            cv::circle(image, centre, radius, scalar(outlineColour), outline, cv::LINE_AA, kShift);
        }
        return;
    }
    const std::vector<std::vector<cv::Point>> polygons{polygon(shape, instance, size)};
    cv::fillPoly(image, polygons, scalar(fill), cv::LINE_AA, kShift);
    if (outline > 0) {
        cv::polylines(image, polygons, true, scalar(outlineColour), outline, cv::LINE_AA, kShift);
    }
}

// Diagonal hatching a shade darker than the paper, one pixel wide, every tenth of the side.
void addHatching(cv::Mat& image, const Rgb& paper)
{
    const int size = image.cols;
    const int period = std::max(4, size / 10);
    const Rgb hatch = {uint8_t(paper[0] * 0.82), uint8_t(paper[1] * 0.82),
                       uint8_t(paper[2] * 0.82)};
    for (int start = -size; start < size; start += period) {
        cv::line(image, cv::Point(start, size), cv::Point(start + size, 0), scalar(hatch), 1,
                 cv::LINE_8);
    }
}

// Paper grain: the same small offset on the three channels of a pixel, from the scene's seed.
void addGrain(cv::Mat& image, uint64_t seed)
{
    SplitMix64 random(seed);
    for (int y = 0; y < image.rows; ++y) {
        auto* row = image.ptr<cv::Vec3b>(y);
        for (int x = 0; x < image.cols; ++x) {
            const int grain = random.below(11) - 5;
            for (int c = 0; c < 3; ++c) {
                row[x][c] = cv::saturate_cast<uint8_t>(row[x][c] + grain);
            }
        }
    }
}

at::Tensor toTensor(const cv::Mat& image)
{
    return at::from_blob(image.data, {image.rows, image.cols, 3}, at::kByte).clone();
}

} // namespace

const std::vector<SceneColour>& sceneColours()
{
    static const std::vector<SceneColour> colours = {
        {"red", {220, 30, 30}, {238, 136, 128}},     {"green", {30, 170, 60}, {140, 204, 140}},
        {"blue", {30, 70, 220}, {130, 168, 226}},    {"yellow", {240, 210, 20}, {244, 222, 120}},
        {"purple", {140, 40, 170}, {186, 146, 214}}, {"orange", {245, 130, 20}, {244, 178, 110}},
        {"white", {245, 245, 245}, {248, 242, 226}}, {"black", {20, 20, 20}, {84, 84, 96}},
    };
    return colours;
}

const std::vector<Rgb>& inkPalette()
{
    static const std::vector<Rgb> palette = [] {
        std::vector<Rgb> colours;
        for (const SceneColour& colour : sceneColours()) {
            colours.push_back(colour.ink);
        }
        colours.push_back(kOutline);
        return colours;
    }();
    return palette;
}

ShapeScene randomScene(uint64_t seed, uint64_t index)
{
    SplitMix64 random(mix(seed) ^ mix(index + 1));
    const int colourCount = int(sceneColours().size());
    ShapeScene scene;
    scene.shape = Shape(random.below(4));
    const int count = 1 + random.below(3);
    scene.colour = random.below(colourCount);
    scene.background = (scene.colour + 1 + random.below(colourCount - 1)) % colourCount;
    scene.placement = Placement(random.below(5));
    scene.instances = layOut(scene.placement, count, random);
    scene.textureSeed = random.next();
    return scene;
}

QString sceneCaption(const ShapeScene& scene)
{
    static const char* const kCounts[] = {"a", "two", "three"};
    const int count = std::clamp(int(scene.instances.size()), 1, 3);
    // "an orange circle": the only colour that starts with a vowel.
    const bool vowel = QByteArray("aeiou").contains(sceneColours()[size_t(scene.colour)].name[0]);
    return QStringLiteral("%1 %2 %3%4 on a %5 background%6")
        .arg(count == 1 && vowel ? QStringLiteral("an") : QLatin1String(kCounts[count - 1]),
             QLatin1String(sceneColours()[size_t(scene.colour)].name),
             QLatin1String(shapeWord(scene.shape)), count > 1 ? QStringLiteral("s") : QString(),
             QLatin1String(sceneColours()[size_t(scene.background)].name),
             QLatin1String(placementSuffix(scene.placement)));
}

QStringList allSceneCaptions()
{
    QStringList captions;
    const int colourCount = int(sceneColours().size());
    ShapeScene scene;
    for (int shape = 0; shape < 4; ++shape) {
        for (int count = 1; count <= 3; ++count) {
            for (int colour = 0; colour < colourCount; ++colour) {
                for (int background = 0; background < colourCount; ++background) {
                    for (int placement = 0; placement < 5 && background != colour; ++placement) {
                        scene.shape = Shape(shape);
                        scene.instances.assign(size_t(count), ShapeInstance{});
                        scene.colour = colour;
                        scene.background = background;
                        scene.placement = Placement(placement);
                        captions << sceneCaption(scene);
                    }
                }
            }
        }
    }
    return captions;
}

at::Tensor renderScene(const ShapeScene& scene, SceneStyle style, int size)
{
    if (size < kMinSize || size > kMaxSize) {
        throw Error(QStringLiteral("a demo scene is drawn at %1 to %2 pixels, not %3")
                        .arg(kMinSize)
                        .arg(kMaxSize)
                        .arg(size));
    }
    const bool ink = style == SceneStyle::Ink;
    const auto colourOf = [&](int index) {
        const SceneColour& colour = sceneColours()[size_t(index)];
        return ink ? colour.ink : colour.plain;
    };
    cv::Mat image(size, size, CV_8UC3, scalar(colourOf(scene.background)));
    if (ink) {
        addHatching(image, colourOf(scene.background));
    }
    // Thick at any size: about 3 pixels at 64.
    const int outline = ink ? std::max(2, int(std::lround(size * 0.045))) : 0;
    for (const ShapeInstance& instance : scene.instances) {
        drawShape(image, scene.shape, instance, colourOf(scene.colour), outline, kOutline);
    }
    if (ink) {
        addGrain(image, scene.textureSeed);
    }
    return toTensor(image);
}

QString sceneStyleName(SceneStyle style)
{
    return style == SceneStyle::Ink ? QStringLiteral("ink") : QStringLiteral("plain");
}

SceneStyle parseSceneStyle(const QString& name)
{
    const QString lower = name.trimmed().toLower();
    if (lower == QLatin1String("plain")) {
        return SceneStyle::Plain;
    }
    if (lower == QLatin1String("ink")) {
        return SceneStyle::Ink;
    }
    throw Error(QStringLiteral("unknown demo style '%1'; use plain or ink").arg(name));
}

} // namespace studio::demo
