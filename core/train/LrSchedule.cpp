#include "core/train/LrSchedule.h"

#include "core/Error.h"
#include "core/Logging.h"

#include <QStringList>

#include <algorithm>
#include <cmath>
#include <cstddef>

// The cosine formulas below are written in the operation order of the Python original so that
// every value is bit-identical (reference data: exact). They rely on no FMA contraction, which
// GCC and Clang do not do in ISO mode (-std=c++17, CMAKE_CXX_EXTENSIONS OFF).

namespace studio {

namespace {

using Problem = std::optional<LrSpecProblem>;

constexpr double kPi = 3.141592653589793; // Python's math.pi

void throwIfAny(const Problem& problem)
{
    if (problem) {
        throw Error(problem->message);
    }
}

Problem stepsProblem(int64_t maxSteps, int64_t initialStep)
{
    if (maxSteps < 1) {
        return LrSpecProblem{
            LrSpecField::MaxSteps,
            QStringLiteral("max_steps must be at least 1, got %1: it is the number "
                           "of optimizer steps to train.")
                .arg(maxSteps)};
    }
    if (initialStep < 0) {
        return LrSpecProblem{LrSpecField::InitialStep,
                             QStringLiteral("initial_step must not be negative, got %1: it counts "
                                            "the optimizer steps already done (0 for a new run).")
                                 .arg(initialStep)};
    }
    return std::nullopt;
}

Problem constantRateProblem(double rate)
{
    if (std::isfinite(rate) && rate >= 0.0) {
        return std::nullopt;
    }
    return LrSpecProblem{
        LrSpecField::LearnRate,
        QStringLiteral("learn_rate must be a finite number >= 0, got %1; a typical "
                       "hypernetwork rate is 1e-5.")
            .arg(rate)};
}

LrSpecProblem cosineProblem(LrSpecField field, const QString& message)
{
    return LrSpecProblem{field, QStringLiteral("Cosine schedule: ") + message};
}

Problem cosineCycleProblem(const CosineLrParams& p)
{
    if (p.firstCycleSteps < 1) {
        return cosineProblem(LrSpecField::FirstCycleSteps,
                             QStringLiteral("first_cycle_steps must be at least 1, got %1. It is "
                                            "the length of the first cycle in optimizer steps.")
                                 .arg(p.firstCycleSteps));
    }
    if (p.warmupSteps < 0) {
        return cosineProblem(LrSpecField::WarmupSteps,
                             QStringLiteral("warmup_steps must not be negative, got %1. Use 0 "
                                            "for no warm-up.")
                                 .arg(p.warmupSteps));
    }
    if (p.warmupSteps >= p.firstCycleSteps) {
        return cosineProblem(LrSpecField::WarmupSteps,
                             QStringLiteral("warmup_steps (%1) must be smaller than "
                                            "first_cycle_steps (%2): the warm-up has to end inside "
                                            "the cycle. Shorten the warm-up or lengthen the cycle.")
                                 .arg(p.warmupSteps)
                                 .arg(p.firstCycleSteps));
    }
    if (!std::isfinite(p.cycleMult) || !(p.cycleMult >= 1.0)) {
        return cosineProblem(LrSpecField::CycleMult,
                             QStringLiteral("cycle_mult must be a number >= 1, got %1. 1 keeps "
                                            "every cycle as long as the first, 2 doubles each one.")
                                 .arg(p.cycleMult));
    }
    return std::nullopt;
}

Problem cosineRateProblem(const CosineLrParams& p)
{
    if (!(p.gamma >= 0.0 && p.gamma <= 1.0)) {
        return cosineProblem(LrSpecField::Gamma,
                             QStringLiteral("gamma must lie between 0 and 1, got %1. Each new "
                                            "cycle's peak is max_lr * gamma^cycle; 1 = no decay.")
                                 .arg(p.gamma));
    }
    if (!std::isfinite(p.minLr) || !(p.minLr >= 0.0)) {
        return cosineProblem(LrSpecField::MinLr,
                             QStringLiteral("min_lr must be a finite number >= 0, got %1. It is "
                                            "the floor the cosine descends to, e.g. 6e-7.")
                                 .arg(p.minLr));
    }
    if (!std::isfinite(p.maxLr) || !(p.maxLr > 0.0)) {
        return cosineProblem(LrSpecField::MaxLr,
                             QStringLiteral("max_lr must be a finite number > 0, got %1. It is "
                                            "the peak rate of the first cycle, e.g. 4e-5.")
                                 .arg(p.maxLr));
    }
    return std::nullopt;
}

Problem cosineParamsProblem(const CosineLrParams& params)
{
    if (Problem problem = cosineCycleProblem(params)) {
        return problem;
    }
    return cosineRateProblem(params);
}

// --- webui string parsing -------------------------------------------------------------------

[[noreturn]] void throwStringError(const QString& text, const QString& reason)
{
    const QString syntax = QStringLiteral(
        "Write one rate (\"0.00001\") or comma-separated rate:step items such as "
        "\"0.001:100, 0.00001:1000, 1e-5:10000\" (0.001 until step 100, 0.00001 until step 1000, "
        "then 1e-5 until step 10000); a step is a whole number, -1 means until max steps.");
    throw Error(QStringLiteral("Invalid learning rate schedule (learn_rate) \"%1\": %2. %3")
                    .arg(text, reason, syntax));
}

// Python float(); a negative or non-finite rate is refused although Python would take it,
// because torch refuses it too (or it would silently train uphill).
double parseRate(const QString& text, const QString& field, const QString& item)
{
    bool ok = false;
    const double rate = field.trimmed().toDouble(&ok);
    if (!ok) {
        throwStringError(text, QStringLiteral("the rate \"%1\" in item \"%2\" is not a number")
                                   .arg(field.trimmed(), item.trimmed()));
    }
    if (!std::isfinite(rate) || rate < 0.0) {
        throwStringError(text, QStringLiteral("the rate in item \"%1\" must be a finite number "
                                              ">= 0")
                                   .arg(item.trimmed()));
    }
    return rate;
}

// Python int(): "1e3" and "100.0" are refused.
int64_t parseStep(const QString& text, const QString& field, const QString& item)
{
    bool ok = false;
    const int64_t step = field.trimmed().toLongLong(&ok, 10);
    if (!ok) {
        throwStringError(text, QStringLiteral("the step \"%1\" in item \"%2\" is not a whole "
                                              "number")
                                   .arg(field.trimmed(), item.trimmed()));
    }
    return step;
}

// One LearnScheduleIterator item; returns false when parsing stops after it. Like webui, the
// rate of a skipped item is never read.
bool parseItem(const QString& text, const QString& item, int64_t maxSteps, int64_t initialStep,
               std::vector<LrSegment>& segments)
{
    const QStringList parts = item.split(QLatin1Char(':'));
    if (parts.size() != 2) {
        // webui reads anything but exactly one colon as a bare rate ("1e-3:5:9" is 1e-3).
        segments.push_back({parseRate(text, parts.front(), item), maxSteps});
        return false;
    }
    const int64_t step = parseStep(text, parts[1], item);
    if (step > initialStep) {
        segments.push_back({parseRate(text, parts[0], item), std::min(step, maxSteps)});
        return step <= maxSteps;
    }
    if (step == -1) {
        segments.push_back({parseRate(text, parts[0], item), maxSteps});
        return false;
    }
    return true; // ends at or before the resume step: already trained
}

// When update s = begin runs, webui's apply() has just switched to the segment, so it is only
// left at the next call: begin + 1 at the earliest. Segment 0 is entered at construction, so
// apply(initialStep) can already leave it.
std::vector<int64_t> segmentBeginSteps(const std::vector<LrSegment>& segments, int64_t initialStep)
{
    std::vector<int64_t> begins{initialStep, std::max(segments.front().endStep, initialStep)};
    for (size_t i = 1; i < segments.size(); ++i) {
        begins.push_back(std::max(segments[i].endStep, begins.back() + 1));
    }
    return begins;
}

// --- cosine -----------------------------------------------------------------------------------

// Python: int(math.log(s / F * (M - 1) + 1, M)); math.log(x, base) is log(x) / log(base).
int cycleOfStep(int64_t step, int64_t firstCycleSteps, double cycleMult)
{
    const double x =
        static_cast<double>(step) / static_cast<double>(firstCycleSteps) * (cycleMult - 1.0) + 1.0;
    return static_cast<int>(std::log(x) / std::log(cycleMult));
}

} // namespace

// --- LrSchedule -------------------------------------------------------------------------------

bool LrSchedule::isCycleEnd(int64_t stepsDone) const
{
    Q_UNUSED(stepsDone)
    return false;
}

int LrSchedule::cycleIndex(int64_t step) const
{
    Q_UNUSED(step)
    return 0;
}

// --- ConstantLrSchedule -------------------------------------------------------------------------

ConstantLrSchedule::ConstantLrSchedule(double learningRate, int64_t maxSteps)
    : LrSchedule(maxSteps), m_learningRate(learningRate)
{
    throwIfAny(stepsProblem(maxSteps, 0));
    throwIfAny(constantRateProblem(learningRate));
}

double ConstantLrSchedule::learningRate(int64_t step) const
{
    Q_UNUSED(step)
    return m_learningRate;
}

// --- StepStringLrSchedule -----------------------------------------------------------------------

std::vector<LrSegment> parseLearnRateString(const QString& text, int64_t maxSteps,
                                            int64_t initialStep)
{
    std::vector<LrSegment> segments;
    const QStringList items = text.split(QLatin1Char(','));
    for (const QString& item : items) {
        if (item.trimmed().isEmpty()) {
            continue; // webui skips empty items ("1e-5,")
        }
        if (!parseItem(text, item, maxSteps, initialStep, segments)) {
            return segments;
        }
    }

    if (segments.empty()) {
        throwStringError(text, QStringLiteral("no item applies from step %1 on (every item ends "
                                              "at or before it)")
                                   .arg(initialStep));
    }
    return segments;
}

StepStringLrSchedule::StepStringLrSchedule(const QString& text, int64_t maxSteps,
                                           int64_t initialStep)
    : LrSchedule(maxSteps)
{
    throwIfAny(stepsProblem(maxSteps, initialStep));
    m_segments = parseLearnRateString(text, maxSteps, initialStep);
    m_beginSteps = segmentBeginSteps(m_segments, initialStep);

    qCDebug(lcTrain) << "LR string" << text << "from step" << initialStep << "has"
                     << m_segments.size() << "segments, ends at step" << m_beginSteps.back();
}

double StepStringLrSchedule::learningRate(int64_t step) const
{
    // The last segment whose begin is <= step; begins are non-decreasing.
    const auto segmentsEnd = m_beginSteps.begin() + static_cast<std::ptrdiff_t>(m_segments.size());
    const auto after = std::upper_bound(m_beginSteps.begin(), segmentsEnd, step);
    const std::ptrdiff_t index = std::max<std::ptrdiff_t>(0, (after - m_beginSteps.begin()) - 1);
    return m_segments[static_cast<size_t>(index)].rate;
}

std::optional<int64_t> StepStringLrSchedule::finishStep() const
{
    // At max steps training ends anyway. (webui's own loop would still run step maxSteps when
    // an item ends exactly at max steps and another follows; we stop at max steps like the
    // reference driver does.)
    const int64_t finished = m_beginSteps.back();
    if (finished < maxSteps()) {
        return finished;
    }
    return std::nullopt;
}

// --- CosineLrSchedule ---------------------------------------------------------------------------

CosineLrSchedule::CosineLrSchedule(const CosineLrParams& params, int64_t maxSteps)
    : LrSchedule(maxSteps), m_params(params)
{
    throwIfAny(stepsProblem(maxSteps, 0));
    throwIfAny(cosineParamsProblem(params));
}

CosineLrSchedule::Position CosineLrSchedule::position(int64_t step) const
{
    const int64_t first = m_params.firstCycleSteps;
    const double mult = m_params.cycleMult;
    if (step < first) {
        return {0, step, static_cast<double>(first)};
    }
    if (mult == 1.0) {
        return {static_cast<int>(step / first), step % first, static_cast<double>(first)};
    }

    // Cycle starts are truncated, lengths are not (spec §4.9).
    const int cycle = cycleOfStep(step, first, mult);
    const double growth = std::pow(mult, cycle);
    const auto cycleStart =
        static_cast<int64_t>(static_cast<double>(first) * (growth - 1.0) / (mult - 1.0));
    return {cycle, step - cycleStart, static_cast<double>(first) * growth};
}

double CosineLrSchedule::learningRate(int64_t step) const
{
    const Position at = position(step);
    const double minLr = m_params.minLr;
    const double peak = m_params.maxLr * std::pow(m_params.gamma, at.cycle);
    const auto warmup = static_cast<double>(m_params.warmupSteps);
    const auto inCycle = static_cast<double>(at.stepInCycle);

    if (inCycle < warmup) {
        return (peak - minLr) * inCycle / warmup + minLr;
    }
    const double angle = kPi * (inCycle - warmup) / (at.cycleLength - warmup);
    return minLr + (peak - minLr) * (1.0 + std::cos(angle)) / 2.0;
}

bool CosineLrSchedule::isCycleEnd(int64_t stepsDone) const
{
    // is_EOC(s + 1) compares the cycle of s + 1 with the one stored by step(s).
    if (stepsDone < m_params.firstCycleSteps) {
        return false;
    }
    return cycleIndex(stepsDone) != cycleIndex(stepsDone - 1);
}

int CosineLrSchedule::cycleIndex(int64_t step) const
{
    return position(step).cycle;
}

// --- factory ------------------------------------------------------------------------------------

std::optional<LrSpecProblem> findLrSpecProblem(const LrScheduleSpec& spec)
{
    if (Problem problem = stepsProblem(spec.maxSteps, spec.initialStep)) {
        return problem;
    }

    switch (spec.kind) {
    case LrScheduleKind::Constant:
        return constantRateProblem(spec.learnRate);
    case LrScheduleKind::Cosine:
        return cosineParamsProblem(spec.cosine);
    case LrScheduleKind::StepString:
        break;
    }

    try {
        parseLearnRateString(spec.learnRateString, spec.maxSteps, spec.initialStep);
    } catch (const Error& error) {
        return LrSpecProblem{LrSpecField::LearnRateString, error.message()};
    }
    return std::nullopt;
}

std::unique_ptr<LrSchedule> makeLrSchedule(const LrScheduleSpec& spec)
{
    throwIfAny(findLrSpecProblem(spec));

    switch (spec.kind) {
    case LrScheduleKind::Constant:
        return std::make_unique<ConstantLrSchedule>(spec.learnRate, spec.maxSteps);
    case LrScheduleKind::Cosine:
        return std::make_unique<CosineLrSchedule>(spec.cosine, spec.maxSteps);
    case LrScheduleKind::StepString:
        break;
    }
    return std::make_unique<StepStringLrSchedule>(spec.learnRateString, spec.maxSteps,
                                                  spec.initialStep);
}

} // namespace studio
