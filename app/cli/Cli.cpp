#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/EngineInfo.h"
#include "core/demo/DemoFiles.h"

#include <QDir>

namespace studio::cli {

namespace {

struct Command
{
    const char* name;
    const char* summary;
    int (*run)(const QStringList& arguments);
};

constexpr Command kCommands[] = {
    {"create", "create a new hypernetwork file", runCreate},
    {"demo-data", "write the built-in demo's captioned pictures and vocabulary", runDemoData},
    {"demo-model", "train the built-in demo's tiny base model", runDemoModel},
    {"generate", "make images from a prompt, with 0, 1 or more hypernetworks", runGenerate},
    {"info", "show the structure and metadata of a hypernetwork file", runInfo},
    {"lr-curve", "print the learning rate of every step of a schedule", runLrCurve},
    {"merge", "merge hypernetworks of the same structure into one file", runMerge},
    {"probe", "run one component on tensors from a safetensors file", runProbe},
    {"tokenize", "print the CLIP token ids of texts", runTokenize},
    {"train", "train a hypernetwork from a run file", runTrain},
};

void printOverview()
{
    out() << "Usage: hnstudio [COMMAND] [OPTIONS]\n\n"
          << "Hypernet Studio trains Stable Diffusion hypernetworks. Without a command it opens\n"
          << "the studio; with one it runs headless.\n\nCommands:\n";
    for (const Command& command : kCommands) {
        out() << "  " << QString::fromLatin1(command.name).leftJustified(12) << command.summary
              << '\n';
    }
    out() << "\nRun 'hnstudio COMMAND --help' for a command's options; 'hnstudio --version' for "
             "the versions.\n";
    out().flush();
}

void printVersion()
{
    const EngineInfo info = engineInfo();
    out() << "hnstudio " << info.studioVersion << " (LibTorch " << info.torchVersion
          << ", devices: " << info.devices.join(QStringLiteral(", ")) << ")\n";

    // Where the studio will open the demo from (core/demo/DemoFiles.h), so that an installation
    // can be checked without a display.
    const QString demoFolder = demo::locateDemoFolder();
    out() << "demo: "
          << (demoFolder.isEmpty() ? QStringLiteral("not found (set HNSTUDIO_DEMO_DIR)")
                                   : QDir::toNativeSeparators(demoFolder))
          << '\n';
    out().flush();
}

} // namespace

int runCli(const QStringList& arguments)
{
    const QString name = arguments.value(1);
    if (name.isEmpty() || name == QLatin1String("--help") || name == QLatin1String("-h") ||
        name == QLatin1String("help")) {
        printOverview();
        return name.isEmpty() ? kExitUsage : kExitOk;
    }
    if (name == QLatin1String("--version") || name == QLatin1String("-v")) {
        printVersion();
        return kExitOk;
    }

    for (const Command& command : kCommands) {
        if (name == QLatin1String(command.name)) {
            QStringList commandArguments = arguments.mid(2);
            commandArguments.prepend(QStringLiteral("hnstudio ") + name);
            return command.run(commandArguments);
        }
    }
    err() << "hnstudio: unknown command '" << name << "'. Run 'hnstudio --help' for the list.\n";
    err().flush();
    return kExitUsage;
}

} // namespace studio::cli
