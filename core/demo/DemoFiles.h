#pragma once

// Where the built-in demo lives and how the studio opens it. The demo folder holds the tiny
// base model (demo.safetensors, demo.yaml, vocab.json, merges.txt, written by
// `hnstudio demo-model`), the ink-style dataset (ink/, written by `hnstudio demo-data`) and
// demo-run.json, the run the studio opens on its first launch. See docs/demo.md.
//
// Qt Core only: the studio's UI uses it.

#include "core/train/RunConfig.h"

#include <QString>

namespace studio::demo {

// The file that marks a folder as the demo folder.
inline constexpr const char* kDemoRunFileName = "demo-run.json";

// The first of these that holds demo-run.json, or an empty string when none does:
//   $HNSTUDIO_DEMO_DIR;
//   <program folder>/../share/hypernet-studio/demo (installed, as the .deb lays it out);
//   the source tree's resources/demo (a build that was not installed).
QString locateDemoFolder();

// The demo run read from `demoFolder`/demo-run.json, its output redirected into
// `outputRoot`/demo-run: the demo folder may be read-only (/usr/share) and a run must never
// write beside the shipped files. Throws studio::Error naming the file when it cannot be read.
RunConfig demoRunConfig(const QString& demoFolder, const QString& outputRoot);

} // namespace studio::demo
