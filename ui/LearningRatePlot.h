#pragma once

// The learning rate: the planned curve, drawn from the schedule before training (the same
// LrSchedule that trains and that `hnstudio lr-curve` prints), and the rate each step actually
// used, as points, while training runs.
//
// Steps are counted as in loss.csv: point N is the Nth optimizer update, which uses the
// schedule's rate of step N - 1 (its count of completed steps).

#include "core/train/LrSchedule.h"
#include "ui/StepPlot.h"

#include <vector>

namespace studio::ui {

class LearningRatePlot : public StepPlot
{
    Q_OBJECT

public:
    // Longer schedules are drawn from every k-th step so that drawing stays quick.
    static constexpr int64_t kMaxPlannedPoints = 100000;

    explicit LearningRatePlot(QWidget* parent = nullptr);

    // Draws the plan of `spec` from spec.initialStep to the end of the schedule. Returns the
    // problem (naming the field) and draws nothing when the spec cannot make a schedule.
    QString setPlan(const LrScheduleSpec& spec);
    void clearPlan();

    void addUsed(double step, double learningRate);
    void setUsed(const std::vector<double>& steps, const std::vector<double>& rates);
    void clearUsed();

    int plannedPointCount() const { return static_cast<int>(m_plannedSteps.size()); }
    double plannedStep(int index) const { return m_plannedSteps.at(static_cast<size_t>(index)); }
    double plannedRate(int index) const { return m_plannedRates.at(static_cast<size_t>(index)); }
    int usedPointCount() const { return static_cast<int>(m_usedSteps.size()); }
    double usedStep(int index) const { return m_usedSteps.at(static_cast<size_t>(index)); }
    double usedRate(int index) const { return m_usedRates.at(static_cast<size_t>(index)); }

    QString describeNearest(double step) const override;

protected:
    bool dataBounds(QCPRange& steps, QCPRange& values) const override;
    // From 0, so that rates compare by height (a step from 1e-3 to 1e-4 is a fall of 90%).
    QCPRange valueRange(const QCPRange& fitted) const override;

private:
    void updatePlannedGraph();
    void updateUsedGraph();

    QCPGraph* m_plannedGraph = nullptr;
    QCPGraph* m_usedGraph = nullptr;
    std::vector<double> m_plannedSteps;
    std::vector<double> m_plannedRates;
    std::vector<double> m_usedSteps;
    std::vector<double> m_usedRates;
};

} // namespace studio::ui
