#pragma once

// Whole-file operations on hypernetworks for the studio and the CLI, behind a torch-free
// interface: create a file from a configuration, summarise a file, and merge files of the same
// structure into one ordinary .pt (studio.md section 4: weighted merge, per-module weights).

#include "core/hypernetwork/HypernetworkConfig.h"

#include <QString>
#include <QStringList>

#include <cstdint>
#include <vector>

namespace studio {

class Hypernetwork;

struct HypernetworkSummary
{
    QString path;
    HypernetworkConfig config;
    int64_t parameterCount = 0;
    int64_t fileBytes = 0;
    QString shortHash; // the webui's sha256 prefix of the file
};

// The number of trainable parameters a hypernetwork of `config` has, computed from the
// structure alone (no modules are built). `config` must pass validate(config, true).
int64_t countParameters(const HypernetworkConfig& config);

// The size the .pt of `config` will have on disk, within a few kilobytes (float32 weights plus
// the pickle and zip overhead).
int64_t estimateFileBytes(const HypernetworkConfig& config);

// Validates `config` for creation, initialises a hypernetwork (from config.initSeed when set)
// and writes it to `path` atomically. Throws studio::Error naming the field or the file.
HypernetworkSummary createHypernetworkFile(const HypernetworkConfig& config, const QString& path);

// The summary of `hypernetwork`, just saved as `path` (for the engine: the UI reads files).
HypernetworkSummary summarizeSavedHypernetwork(const Hypernetwork& hypernetwork,
                                               const QString& path);

// Reads `path` (no pickled code runs) and describes it. Throws studio::Error naming the file.
HypernetworkSummary summarizeHypernetworkFile(const QString& path);

struct MergeInput
{
    QString path;
    double weight = 1.0;
};

// Empty when the files can be merged; otherwise one sentence saying why not, naming the files
// and the first difference ("'b.pt' has layer structure 1, 4, 1 where 'a.pt' has 1, 2, 1").
// Merging needs the same sizes, layer structure, activation, layer norm, dropout structure and
// residual layout: the tensors must line up one to one.
QString mergeIncompatibility(const std::vector<HypernetworkSummary>& inputs);

// Writes sum_i weight_i * tensors_i as one ordinary hypernetwork file named `name`, atomically.
// Weights are used as given (they need not sum to 1). Throws studio::Error with the
// mergeIncompatibility() reason when the inputs do not line up.
HypernetworkSummary mergeHypernetworkFiles(const std::vector<MergeInput>& inputs,
                                           const QString& outputPath, const QString& name);

} // namespace studio
