#pragma once

// The subcommands of the `hnstudio` command-line tool. Each takes its arguments as
// QCommandLineParser expects them (arguments[0] = "hnstudio <command>") and returns the exit
// status: 0 success, 1 failure, 2 bad usage; messages go to stderr.

#include <QStringList>

namespace studio::cli {

// Dispatches `hnstudio <command> ...` (the whole argv) to a subcommand.
int runCli(const QStringList& arguments);

// hnstudio create: a new hypernetwork file.
int runCreate(const QStringList& arguments);

// hnstudio demo-data: the built-in demo's captioned pictures and vocabulary.
int runDemoData(const QStringList& arguments);

// hnstudio demo-model: trains the built-in demo's tiny base model.
int runDemoModel(const QStringList& arguments);

// hnstudio generate: images from a prompt, with 0, 1 or more hypernetworks.
int runGenerate(const QStringList& arguments);

// hnstudio info: structure and metadata of a hypernetwork file.
int runInfo(const QStringList& arguments);

// hnstudio lr-curve: prints the learning rate of every optimizer step of a schedule.
int runLrCurve(const QStringList& arguments);

// hnstudio merge: one hypernetwork from several of the same structure.
int runMerge(const QStringList& arguments);

// hnstudio probe: runs one component on tensors from a safetensors file.
int runProbe(const QStringList& arguments);

// hnstudio tokenize: the CLIP token ids of texts.
int runTokenize(const QStringList& arguments);

// hnstudio train: trains a hypernetwork from a run file.
int runTrain(const QStringList& arguments);

} // namespace studio::cli
