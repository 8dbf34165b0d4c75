// hnstudio lr-curve: prints the learning rate every optimizer step uses, for a webui learning-rate
// string or the extension's cosine schedule, so a schedule can be checked before training.

#include "app/cli/CliSupport.h"
#include "app/cli/Commands.h"

#include "core/Error.h"
#include "core/train/LrSchedule.h"

#include <QCommandLineOption>
#include <QCommandLineParser>
#include <QLocale>
#include <QTextStream>

#include <algorithm>

namespace studio::cli {

namespace {

// CSV: 17 significant digits, so that every double reads back exactly. The table uses the
// shortest text that reads back exactly: the same numbers, easier to read (5e-05).
constexpr int kCsvLrDigits = 17;

const QString kSteps = QStringLiteral("steps");
const QString kStart = QStringLiteral("start");
const QString kLr = QStringLiteral("lr");
const QString kCosine = QStringLiteral("cosine");
const QString kMaxLr = QStringLiteral("max-lr");
const QString kMinLr = QStringLiteral("min-lr");
const QString kCycleSteps = QStringLiteral("cycle-steps");
const QString kCycleMult = QStringLiteral("cycle-mult");
const QString kWarmup = QStringLiteral("warmup");
const QString kGamma = QStringLiteral("gamma");
const QString kCsv = QStringLiteral("csv");

struct Request
{
    LrScheduleSpec spec;
    bool csv = false;
    bool maxLrFromString = false; // cosine peak taken from --lr
};

QString helpDescription()
{
    return QStringLiteral(
        "Prints the learning rate (LR) that every optimizer step uses, from --start up\n"
        "to --steps or to where the schedule ends, for a webui LR string or for the\n"
        "extension's cosine schedule with warm restarts.\n"
        "\n"
        "LR string (--lr), webui syntax: comma-separated items, each \"rate:step\" (use\n"
        "rate up to, not including, that step) or a bare rate (until --steps). Example:\n"
        "  --lr \"5e-5:100, 5e-6:1500, 5e-7\"\n"
        "  steps 0-99 use 5e-5, steps 100-1499 use 5e-6, the remaining steps 5e-7.\n"
        "A step must be a whole number (1000, not 1e3); \"rate:-1\" runs to --steps.\n"
        "If the last item ends before --steps, training stops there. Items that end at\n"
        "or before --start are skipped, as when training resumes.\n"
        "\n"
        "Cosine (--cosine): every cycle warms up linearly from --min-lr to its peak over\n"
        "--warmup steps, then follows a half cosine back down to --min-lr. The first\n"
        "cycle has --cycle-steps steps; each next one is --cycle-mult times longer and\n"
        "peaks --gamma times lower. Defaults are the extension's UI defaults.\n"
        "\n"
        "Exit status: 0 success, 1 failure, 2 bad usage.");
}

QList<QCommandLineOption> scheduleOptions()
{
    return {
        {kSteps, QStringLiteral("Max steps: optimizer steps of the training (required)."),
         QStringLiteral("N")},
        {kStart,
         QStringLiteral("First step to print: the steps already done when resuming "
                        "(default 0)."),
         QStringLiteral("S"), QStringLiteral("0")},
        {kLr,
         QStringLiteral("webui LR string, e.g. \"5e-5:100, 5e-6:1500, 5e-7\" (see above). "
                        "With --cosine and no --max-lr, its rate at --start is the peak, as in "
                        "the extension."),
         QStringLiteral("STRING")},
        {kCosine, QStringLiteral("Use the extension's CosineAnnealingWarmUpRestarts.")},
        {kMaxLr, QStringLiteral("Cosine: peak LR of the first cycle."), QStringLiteral("X")},
        {kMinLr,
         QStringLiteral("Cosine: floor of every cycle and start of its warm-up "
                        "(default 6e-7)."),
         QStringLiteral("X"), QStringLiteral("6e-7")},
        {kCycleSteps, QStringLiteral("Cosine: steps of the first cycle (default 64)."),
         QStringLiteral("N"), QStringLiteral("64")},
        {kCycleMult,
         QStringLiteral("Cosine: length factor of each next cycle, >= 1 "
                        "(default 1)."),
         QStringLiteral("X"), QStringLiteral("1")},
        {kWarmup,
         QStringLiteral("Cosine: warm-up steps at the start of every cycle, 0 or more "
                        "and below --cycle-steps (default 5)."),
         QStringLiteral("N"), QStringLiteral("5")},
        {kGamma,
         QStringLiteral("Cosine: peak factor of each next cycle, 0 to 1 (default 1, no "
                        "decay)."),
         QStringLiteral("X"), QStringLiteral("1")},
    };
}

void setUpParser(QCommandLineParser& parser)
{
    parser.setApplicationDescription(helpDescription());
    parser.addHelpOption();
    parser.addOptions(scheduleOptions());
    parser.addOption({kCsv, QStringLiteral("Print CSV: a \"step,lr\" header, then one line per "
                                           "step. LRs have 17 significant digits so they read "
                                           "back exactly.")});
}

// --- reading the options ----------------------------------------------------------------------

void checkOptionMix(const QCommandLineParser& parser)
{
    if (!parser.positionalArguments().isEmpty()) {
        failUsage(QStringLiteral("unexpected argument \"%1\".")
                      .arg(parser.positionalArguments().constFirst()));
    }
    if (!parser.isSet(kSteps)) {
        failUsage(QStringLiteral("--steps is required."));
    }
    if (!parser.isSet(kCosine) && !parser.isSet(kLr)) {
        failUsage(QStringLiteral("give a schedule: --lr STRING or --cosine."));
    }
}

void checkCosineOptionsUse(const QCommandLineParser& parser)
{
    const bool cosine = parser.isSet(kCosine);
    for (const QString& name : {kMaxLr, kMinLr, kCycleSteps, kCycleMult, kWarmup, kGamma}) {
        if (parser.isSet(name) && !cosine) {
            failUsage(QStringLiteral("--%1 only applies to the cosine schedule; add --cosine.")
                          .arg(name));
        }
    }
    if (cosine && parser.isSet(kMaxLr) && parser.isSet(kLr)) {
        failUsage(QStringLiteral("--max-lr and --lr both set the cosine peak; give only one."));
    }
    if (cosine && !parser.isSet(kMaxLr) && !parser.isSet(kLr)) {
        failUsage(QStringLiteral("--cosine needs --max-lr (or --lr, whose rate at --start is "
                                 "the peak)."));
    }
}

// The extension's max_lr: the rate the LR string gives at the resume step.
double peakFromString(const LrScheduleSpec& spec)
{
    try {
        return StepStringLrSchedule(spec.learnRateString, spec.maxSteps, spec.initialStep)
            .initialLearningRate();
    } catch (const Error& error) {
        failUsage(QStringLiteral("--lr: ") + error.message());
    }
}

CosineLrParams cosineParams(const QCommandLineParser& parser)
{
    CosineLrParams params;
    params.minLr = doubleOption(parser, kMinLr);
    params.firstCycleSteps = integerOption(parser, kCycleSteps);
    params.cycleMult = doubleOption(parser, kCycleMult);
    params.warmupSteps = integerOption(parser, kWarmup);
    params.gamma = doubleOption(parser, kGamma);
    if (parser.isSet(kMaxLr)) {
        params.maxLr = doubleOption(parser, kMaxLr);
    }
    return params;
}

QString optionOfField(LrSpecField field, bool maxLrFromString)
{
    switch (field) {
    case LrSpecField::MaxSteps:
        return kSteps;
    case LrSpecField::InitialStep:
        return kStart;
    case LrSpecField::LearnRate:
    case LrSpecField::LearnRateString:
        return kLr;
    case LrSpecField::FirstCycleSteps:
        return kCycleSteps;
    case LrSpecField::CycleMult:
        return kCycleMult;
    case LrSpecField::MaxLr:
        return maxLrFromString ? kLr : kMaxLr;
    case LrSpecField::MinLr:
        return kMinLr;
    case LrSpecField::WarmupSteps:
        return kWarmup;
    case LrSpecField::Gamma:
        return kGamma;
    }
    return {};
}

void checkSpec(const Request& request)
{
    const LrScheduleSpec& spec = request.spec;
    if (spec.maxSteps >= 1 && spec.initialStep >= spec.maxSteps) {
        failUsage(QStringLiteral("--start (%1) must be below --steps (%2).")
                      .arg(spec.initialStep)
                      .arg(spec.maxSteps));
    }
    if (const auto problem = findLrSpecProblem(spec)) {
        const QString option = optionOfField(problem->field, request.maxLrFromString);
        failUsage(QStringLiteral("--%1: %2").arg(option, problem->message));
    }
}

Request requestFromOptions(const QCommandLineParser& parser)
{
    checkOptionMix(parser);
    checkCosineOptionsUse(parser);

    Request request;
    request.csv = parser.isSet(kCsv);
    request.spec.maxSteps = integerOption(parser, kSteps);
    request.spec.initialStep = integerOption(parser, kStart);
    request.spec.learnRateString = parser.value(kLr);
    if (parser.isSet(kCosine)) {
        request.spec.kind = LrScheduleKind::Cosine;
        request.spec.cosine = cosineParams(parser);
        request.maxLrFromString = !parser.isSet(kMaxLr);
    }

    checkSpec(request);
    if (request.maxLrFromString) {
        request.spec.cosine.maxLr = peakFromString(request.spec);
        checkSpec(request);
    }
    return request;
}

// --- printing ---------------------------------------------------------------------------------

void writeCsv(QTextStream& out, const LrSchedule& schedule, int64_t start)
{
    out << "step,lr\n";
    for (int64_t step = start; step < schedule.endStep(); ++step) {
        out << step << ',' << QString::number(schedule.learningRate(step), 'g', kCsvLrDigits)
            << '\n';
    }
}

void writeTable(QTextStream& out, const LrSchedule& schedule, int64_t start)
{
    const QString header = QStringLiteral("step");
    const auto width = std::max(header.size(), QString::number(schedule.endStep() - 1).size());
    out << header.rightJustified(width) << "  learning rate\n";
    for (int64_t step = start; step < schedule.endStep(); ++step) {
        out << QString::number(step).rightJustified(width) << "  "
            << QString::number(schedule.learningRate(step), 'g', QLocale::FloatingPointShortest)
            << '\n';
    }
}

void noteEarlyFinish(const LrSchedule& schedule)
{
    if (const auto finish = schedule.finishStep()) {
        err() << "note: the schedule ends at step " << *finish << ", before --steps "
              << schedule.maxSteps() << "; training stops there.\n";
        err().flush();
    }
}

int printCurve(const Request& request)
{
    const std::unique_ptr<LrSchedule> schedule = makeLrSchedule(request.spec);

    if (request.csv) {
        writeCsv(out(), *schedule, request.spec.initialStep);
    } else {
        writeTable(out(), *schedule, request.spec.initialStep);
    }
    out().flush();
    if (out().status() != QTextStream::Ok) {
        throw Error(QStringLiteral("could not write the curve to standard output."));
    }

    noteEarlyFinish(*schedule);
    return kExitOk;
}

int lrCurve(const QStringList& arguments)
{
    QCommandLineParser parser;
    setUpParser(parser);
    if (!parseArguments(parser, arguments)) {
        return kExitOk;
    }
    return printCurve(requestFromOptions(parser));
}

} // namespace

int runLrCurve(const QStringList& arguments)
{
    return runCommand(QStringLiteral("lr-curve"), [&] { return lrCurve(arguments); });
}

} // namespace studio::cli
