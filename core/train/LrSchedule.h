#pragma once

// Learning-rate schedules of the two trainers we stay compatible with (spec hypernetworks.md
// §3.7 and §4.9): webui's step string ("5e-5:100, 5e-6:1500, 5e-7") and the extension's
// CosineAnnealingWarmUpRestarts, plus a plain constant rate.
//
// A schedule is a pure function of the optimizer step, so resuming needs no saved state.
// Everywhere below, `step` is the 0-based count of completed optimizer steps when an update runs
// (webui's `hypernetwork.step`); the LR of step s is the one that update s uses.

#include <QString>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace studio {

class LrSchedule
{
public:
    virtual ~LrSchedule() = default;

    // The LR that optimizer step `step` (>= 0) uses.
    virtual double learningRate(int64_t step) const = 0;

    // The step at which training stops early because the schedule ran out (a webui string whose
    // last item ends before max steps); nullopt when training runs to maxSteps().
    virtual std::optional<int64_t> finishStep() const { return std::nullopt; }

    // Steps up to which training runs, unless finishStep() stops it earlier.
    int64_t maxSteps() const { return m_maxSteps; }

    // The first step that is not trained: finishStep() or else maxSteps().
    int64_t endStep() const { return finishStep().value_or(m_maxSteps); }

    // True when `stepsDone` (the step count right after an update) is the first step of a new
    // cycle: the extension's is_EOC(s + 1), which triggers its per-cycle save and preview.
    // Only the cosine schedule has cycles.
    virtual bool isCycleEnd(int64_t stepsDone) const;

    // The cycle that step `step` belongs to (0 for schedules without cycles).
    virtual int cycleIndex(int64_t step) const;

protected:
    explicit LrSchedule(int64_t maxSteps) : m_maxSteps(maxSteps) {}

private:
    int64_t m_maxSteps;
};

// One rate of a webui string: used until `endStep` (exclusive), as webui's (rate, end_step).
struct LrSegment
{
    double rate = 0.0;
    int64_t endStep = 0;
};

// The segments webui's LearnScheduleIterator keeps for `text` when training resumes at
// `initialStep`, with its exact rules: items that end at or before `initialStep` are skipped,
// ends are clamped to `maxSteps` and parsing stops after the first item past it, `rate:-1` and a
// bare rate run to `maxSteps`, steps must be whole numbers. Throws studio::Error naming the
// string and explaining the syntax when an item does not parse or no item is left.
std::vector<LrSegment> parseLearnRateString(const QString& text, int64_t maxSteps,
                                            int64_t initialStep = 0);

class ConstantLrSchedule final : public LrSchedule
{
public:
    // Throws studio::Error when the rate is negative or not finite, or maxSteps < 1.
    ConstantLrSchedule(double learningRate, int64_t maxSteps);

    double learningRate(int64_t step) const override;

private:
    double m_learningRate;
};

// webui's LearnRateScheduler driven as train_hypernetwork drives it. The caller checks
// `initialStep < maxSteps` first, as webui does before it parses the string.
class StepStringLrSchedule final : public LrSchedule
{
public:
    // Throws studio::Error like parseLearnRateString(), or when maxSteps < 1 or initialStep < 0.
    StepStringLrSchedule(const QString& text, int64_t maxSteps, int64_t initialStep = 0);

    // Steps before the start step get the first rate, steps after the end the last one.
    double learningRate(int64_t step) const override;
    std::optional<int64_t> finishStep() const override;

    // The parsed segments (webui's `rates`) and the LR right after construction
    // (`scheduler.learn_rate`, which the extension also uses as the cosine max_lr).
    const std::vector<LrSegment>& segments() const { return m_segments; }
    double initialLearningRate() const { return m_segments.front().rate; }
    int64_t initialStep() const { return m_beginSteps.front(); }

private:
    std::vector<LrSegment> m_segments;
    // m_beginSteps[i] = first step that uses segment i; the extra last entry is the step at
    // which webui sets `finished`.
    std::vector<int64_t> m_beginSteps;
};

// The extension's CosineAnnealingWarmUpRestarts parameters; defaults are its UI defaults.
struct CosineLrParams
{
    int64_t firstCycleSteps = 64;
    double cycleMult = 1.0;
    double maxLr = 4e-5;
    double minLr = 6e-7;
    int64_t warmupSteps = 5;
    double gamma = 1.0;
};

// The explicit-epoch (closed form) path the extension uses: scheduler.step(s) before update s.
// Bit-compatible with the Python double arithmetic, including where log() lands just below an
// integer at a cycle boundary (the cycle then starts one step late, as in Python).
class CosineLrSchedule final : public LrSchedule
{
public:
    struct Position
    {
        int cycle = 0;
        int64_t stepInCycle = 0;
        double cycleLength = 0.0; // a float for cycle_mult > 1, never truncated
    };

    // Throws studio::Error naming the parameter when one is out of range.
    CosineLrSchedule(const CosineLrParams& params, int64_t maxSteps);

    double learningRate(int64_t step) const override;
    bool isCycleEnd(int64_t stepsDone) const override;
    int cycleIndex(int64_t step) const override;

    Position position(int64_t step) const;
    const CosineLrParams& params() const { return m_params; }

private:
    CosineLrParams m_params;
};

enum class LrScheduleKind
{
    Constant,
    StepString,
    Cosine,
};

// Everything needed to build any schedule; the fields a kind does not use are ignored.
struct LrScheduleSpec
{
    LrScheduleKind kind = LrScheduleKind::StepString;
    int64_t maxSteps = 100000;
    int64_t initialStep = 0;                             // completed steps when training (re)starts
    double learnRate = 1e-5;                             // Constant
    QString learnRateString = QStringLiteral("0.00001"); // StepString, webui syntax
    CosineLrParams cosine;                               // Cosine
};

// The spec fields, so that a front end can point at its own input for a problem.
enum class LrSpecField
{
    MaxSteps,
    InitialStep,
    LearnRate,
    LearnRateString,
    FirstCycleSteps,
    CycleMult,
    MaxLr,
    MinLr,
    WarmupSteps,
    Gamma,
};

struct LrSpecProblem
{
    LrSpecField field;
    QString message; // names the field and says how to fix it
};

// The first problem of `spec`, or nullopt when makeLrSchedule() will accept it.
std::optional<LrSpecProblem> findLrSpecProblem(const LrScheduleSpec& spec);

// Builds the schedule; throws studio::Error with the message of findLrSpecProblem().
std::unique_ptr<LrSchedule> makeLrSchedule(const LrScheduleSpec& spec);

} // namespace studio
