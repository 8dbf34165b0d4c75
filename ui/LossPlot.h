#pragma once

// The loss of every optimizer step, raw (thin, light) and smoothed (an exponential moving
// average with TensorBoard's start-up correction, so the first points are not pulled to 0).

#include "ui/StepPlot.h"

#include <vector>

namespace studio::ui {

class LossPlot : public StepPlot
{
    Q_OBJECT

public:
    explicit LossPlot(QWidget* parent = nullptr);

    void addPoint(double step, double loss);
    void setPoints(const std::vector<double>& steps, const std::vector<double>& losses);
    void clear();

    // Weight of the past in the moving average, in [0, 1): 0 plots the raw loss again.
    void setSmoothing(double weight);
    double smoothing() const { return m_smoothing; }

    int pointCount() const { return static_cast<int>(m_steps.size()); }
    double stepAt(int index) const { return m_steps.at(static_cast<size_t>(index)); }
    double rawLoss(int index) const { return m_raw.at(static_cast<size_t>(index)); }
    double smoothedLoss(int index) const { return m_smoothed.at(static_cast<size_t>(index)); }

    QString describeNearest(double step) const override;

protected:
    bool dataBounds(QCPRange& steps, QCPRange& values) const override;

private:
    void appendSmoothed(double loss);
    void rebuildSmoothed();

    QCPGraph* m_rawGraph = nullptr;
    QCPGraph* m_smoothedGraph = nullptr;
    std::vector<double> m_steps;
    std::vector<double> m_raw;
    std::vector<double> m_smoothed;
    double m_smoothing = 0.9;
    double m_average = 0.0;    // the biased moving average
    double m_pastWeight = 1.0; // m_smoothing ^ points, for the start-up correction
};

} // namespace studio::ui
