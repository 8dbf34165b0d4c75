#pragma once

// The built-in demo's pictures: procedurally drawn, captioned scenes of 1 to 3 shapes of one
// kind and colour, placed left, right, top, bottom or in the centre, on a coloured background
// ("two yellow squares on a white background, left"). A scene is a description; it is drawn
// in two styles: `Plain` (flat fills, what the demo base model is trained on) and `Ink` (thick
// black outlines, a fixed pastel palette, diagonal hatching and paper grain: the style a demo
// hypernetwork learns, which the base model never sees).
//
// Everything follows from a seed through our own SplitMix64, so the same seed gives the same
// scenes, captions and pixels on every machine.

#include <ATen/core/Tensor.h>

#include <QString>
#include <QStringList>

#include <array>
#include <cstdint>
#include <vector>

namespace studio::demo {

enum class Shape
{
    Circle,
    Square,
    Triangle,
    Star
};
enum class Placement
{
    Center,
    Left,
    Right,
    Top,
    Bottom
};
enum class SceneStyle
{
    Plain,
    Ink
};

using Rgb = std::array<uint8_t, 3>;

struct SceneColour
{
    const char* name;
    Rgb plain; // the flat colour of the plain style
    Rgb ink;   // its pastel in the ink style
};

// red, green, blue, yellow, purple, orange, white, black: the caption words and both styles.
const std::vector<SceneColour>& sceneColours();

// The ink style's palette: every colour an ink picture is made of before anti-aliasing and
// paper grain (the pastels, the outline black).
const std::vector<Rgb>& inkPalette();

// Centre and size of one shape, as fractions of the picture's side, so that a scene draws the
// same at any size.
struct ShapeInstance
{
    double x = 0.5;
    double y = 0.5;
    double radius = 0.2;
    double angle = 0.0; // radians; a tilt of at most a few degrees
};

struct ShapeScene
{
    Shape shape = Shape::Circle;
    int colour = 0;     // index into sceneColours()
    int background = 1; // index into sceneColours(), never `colour`
    Placement placement = Placement::Center;
    std::vector<ShapeInstance> instances; // 1 to 3
    uint64_t textureSeed = 0;             // the ink style's paper grain
};

// Scene `index` of the sequence that `seed` starts: independent of how many are drawn, so the
// first 10 of 100 scenes are the 10 scenes of a run of 10.
ShapeScene randomScene(uint64_t seed, uint64_t index);

// "a red circle on a blue background"; a placement other than the centre is appended
// (", left").
QString sceneCaption(const ShapeScene& scene);

// Every caption a scene can have, each once: what the demo's vocabulary is learnt from.
QStringList allSceneCaptions();

// The scene drawn anti-aliased into a [size, size, 3] uint8 RGB CPU tensor. Throws
// studio::Error when `size` is below 16 or above 4096.
at::Tensor renderScene(const ShapeScene& scene, SceneStyle style, int size = 64);

QString sceneStyleName(SceneStyle style);
// "plain" or "ink"; throws studio::Error naming the accepted names otherwise.
SceneStyle parseSceneStyle(const QString& name);

} // namespace studio::demo
