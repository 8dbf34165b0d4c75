// The learning-rate schedules against the reference data of the original Python code
// (reference/lr_schedules/, README section 2), the worked examples of spec §4.9, webui's string
// parsing rules (spec §3.7) and the validation messages.

#include "core/Error.h"
#include "core/train/LrSchedule.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <QTest>

#include <cmath>

using namespace studio;

Q_DECLARE_METATYPE(studio::CosineLrParams)
Q_DECLARE_METATYPE(studio::LrScheduleSpec)
Q_DECLARE_METATYPE(studio::LrSpecField)

namespace {

// The reference was produced in IEEE double; README: exact, or rtol 1e-12.
constexpr double kReferenceRtol = 1e-12;
// The spec's worked examples are rounded to about 4 significant digits.
constexpr double kExampleRtol = 1e-3;

QString referenceDir()
{
    const QByteArray fromEnvironment = qgetenv("HNSTUDIO_REFERENCE_DIR");
    if (!fromEnvironment.isEmpty()) {
        return QString::fromLocal8Bit(fromEnvironment);
    }
#ifdef HNSTUDIO_REFERENCE_DIR
    return QString::fromUtf8(HNSTUDIO_REFERENCE_DIR);
#else
    return {};
#endif
}

QJsonArray loadRuns(const QString& fileName)
{
    QFile file(referenceDir() + QStringLiteral("/lr_schedules/") + fileName);
    if (!file.open(QIODevice::ReadOnly)) {
        return {};
    }
    return QJsonDocument::fromJson(file.readAll()).array();
}

bool isClose(double actual, double expected, double rtol)
{
    return actual == expected || std::abs(actual - expected) <= rtol * std::abs(expected);
}

QString lrMismatch(int64_t step, double actual, double expected)
{
    return QStringLiteral("step %1: lr %2, expected %3")
        .arg(step)
        .arg(actual, 0, 'g', 17)
        .arg(expected, 0, 'g', 17);
}

// Segments in webui syntax ("5e-05:100, 5e-06:600"), to compare parses as one readable string.
QString segmentsText(const std::vector<LrSegment>& segments)
{
    QStringList items;
    for (const LrSegment& segment : segments) {
        items << QStringLiteral("%1:%2").arg(segment.rate).arg(segment.endStep);
    }
    return items.join(QStringLiteral(", "));
}

CosineLrParams cosineParamsFromJson(const QJsonObject& params)
{
    CosineLrParams result;
    result.firstCycleSteps = params.value(QStringLiteral("first_cycle_steps")).toInteger();
    result.cycleMult = params.value(QStringLiteral("cycle_mult")).toDouble();
    result.maxLr = params.value(QStringLiteral("max_lr")).toDouble();
    result.minLr = params.value(QStringLiteral("min_lr")).toDouble();
    result.warmupSteps = params.value(QStringLiteral("warmup_steps")).toInteger();
    result.gamma = params.value(QStringLiteral("gamma")).toDouble();
    return result;
}

CosineLrParams cosineParams(int64_t cycleSteps, double mult, int64_t warmup, double maxLr,
                            double minLr, double gamma)
{
    return CosineLrParams{cycleSteps, mult, maxLr, minLr, warmup, gamma};
}

LrScheduleSpec stringSpec(const QString& text, int64_t maxSteps = 600, int64_t initialStep = 0)
{
    LrScheduleSpec spec;
    spec.kind = LrScheduleKind::StepString;
    spec.learnRateString = text;
    spec.maxSteps = maxSteps;
    spec.initialStep = initialStep;
    return spec;
}

LrScheduleSpec constantSpec(double rate, int64_t maxSteps = 600, int64_t initialStep = 0)
{
    LrScheduleSpec spec = stringSpec(QString(), maxSteps, initialStep);
    spec.kind = LrScheduleKind::Constant;
    spec.learnRate = rate;
    return spec;
}

LrScheduleSpec cosineSpec(const CosineLrParams& params)
{
    LrScheduleSpec spec;
    spec.kind = LrScheduleKind::Cosine;
    spec.maxSteps = 600;
    spec.cosine = params;
    return spec;
}

// The Gamma UI defaults with one field changed.
template <typename Change> LrScheduleSpec cosineSpecWith(Change change)
{
    CosineLrParams params;
    change(params);
    return cosineSpec(params);
}

} // namespace

class TestLrSchedule : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();

    void cosineMatchesReference_data();
    void cosineMatchesReference();
    void stringMatchesReference_data();
    void stringMatchesReference();

    void cosineWorkedExamples_data();
    void cosineWorkedExamples();
    void cosineCycleEnds_data();
    void cosineCycleEnds();
    void cosineKeepsPythonBoundaryRounding();

    void stringParsing_data();
    void stringParsing();
    void stringRatesAndFinish_data();
    void stringRatesAndFinish();
    void schedulesWithoutCycles();
    void constantSchedule();

    void invalidSpecs_data();
    void invalidSpecs();
    void stringErrorExplainsSyntax();

private:
    QJsonArray m_cosineRuns;
    QJsonArray m_stringRuns;
};

void TestLrSchedule::initTestCase()
{
    m_cosineRuns = loadRuns(QStringLiteral("cosine_annealing_warmup_restarts.json"));
    m_stringRuns = loadRuns(QStringLiteral("webui_learn_rate_string.json"));
    QVERIFY2(!m_cosineRuns.isEmpty() && !m_stringRuns.isEmpty(),
             qPrintable(QStringLiteral("no reference data in \"%1/lr_schedules\"; set "
                                       "HNSTUDIO_REFERENCE_DIR to the reference folder")
                            .arg(referenceDir())));
}

// --- reference data -------------------------------------------------------------------------

void TestLrSchedule::cosineMatchesReference_data()
{
    QTest::addColumn<QJsonObject>("run");
    for (qsizetype i = 0; i < m_cosineRuns.size(); ++i) {
        QTest::addRow("run%d", int(i)) << m_cosineRuns.at(i).toObject();
    }
}

void TestLrSchedule::cosineMatchesReference()
{
    QFETCH(QJsonObject, run);
    const auto maxSteps = run.value(QStringLiteral("steps")).toInteger();
    const auto start = run.value(QStringLiteral("start_step")).toInteger(0);
    const CosineLrSchedule schedule(
        cosineParamsFromJson(run.value(QStringLiteral("params")).toObject()), maxSteps);
    const QJsonArray lrs = run.value(QStringLiteral("lrs")).toArray();
    const QJsonArray cycles = run.value(QStringLiteral("cycle")).toArray();
    const QJsonArray cycleEnds = run.value(QStringLiteral("is_eoc_after_step")).toArray();
    QCOMPARE(lrs.size(), maxSteps - start);
    QCOMPARE(cycles.size(), lrs.size());
    QCOMPARE(cycleEnds.size(), lrs.size());

    for (qsizetype i = 0; i < lrs.size(); ++i) {
        const int64_t step = start + i;
        const double actual = schedule.learningRate(step);
        const double expected = lrs.at(i).toDouble();
        QVERIFY2(isClose(actual, expected, kReferenceRtol),
                 qPrintable(lrMismatch(step, actual, expected)));
        QCOMPARE(schedule.cycleIndex(step), cycles.at(i).toInt());
        QCOMPARE(schedule.isCycleEnd(step + 1), cycleEnds.at(i).toBool());
    }
}

void TestLrSchedule::stringMatchesReference_data()
{
    QTest::addColumn<QJsonObject>("run");
    for (qsizetype i = 0; i < m_stringRuns.size(); ++i) {
        QTest::addRow("run%d", int(i)) << m_stringRuns.at(i).toObject();
    }
}

void TestLrSchedule::stringMatchesReference()
{
    QFETCH(QJsonObject, run);
    const QJsonObject params = run.value(QStringLiteral("params")).toObject();
    const QString text = params.value(QStringLiteral("learn_rate")).toString();
    const auto maxSteps = params.value(QStringLiteral("max_steps")).toInteger();
    const auto start = params.value(QStringLiteral("cur_step")).toInteger();
    const StepStringLrSchedule schedule(text, maxSteps, start);

    const QJsonArray parsed = run.value(QStringLiteral("parsed_rates")).toArray();
    QCOMPARE(schedule.segments().size(), size_t(parsed.size()));
    for (qsizetype i = 0; i < parsed.size(); ++i) {
        const QJsonArray pair = parsed.at(i).toArray();
        QCOMPARE(schedule.segments()[i].rate, pair.at(0).toDouble());
        QCOMPARE(schedule.segments()[i].endStep, pair.at(1).toInteger());
    }
    QCOMPARE(schedule.initialLearningRate(),
             run.value(QStringLiteral("initial_learn_rate")).toDouble());

    const QJsonValue finished = run.value(QStringLiteral("finished_at_step"));
    QCOMPARE(schedule.finishStep().has_value(), !finished.isNull());
    QCOMPARE(schedule.finishStep().value_or(-1), finished.toInteger(-1));

    const QJsonArray lrs = run.value(QStringLiteral("lrs")).toArray();
    QCOMPARE(schedule.endStep() - start, lrs.size());
    for (qsizetype i = 0; i < lrs.size(); ++i) {
        QCOMPARE(schedule.learningRate(start + i), lrs.at(i).toDouble());
    }
}

// --- cosine: spec §4.9 ------------------------------------------------------------------------

void TestLrSchedule::cosineWorkedExamples_data()
{
    QTest::addColumn<CosineLrParams>("params");
    QTest::addColumn<int64_t>("step");
    QTest::addColumn<int>("cycle");
    QTest::addColumn<double>("lr");

    const CosineLrParams a = cosineParams(64, 1.0, 5, 4e-5, 6e-7, 1.0);
    QTest::addRow("exampleA step0") << a << int64_t(0) << 0 << 6.000e-7;
    QTest::addRow("exampleA step1") << a << int64_t(1) << 0 << 8.480e-6;
    QTest::addRow("exampleA step3") << a << int64_t(3) << 0 << 2.424e-5;
    QTest::addRow("exampleA step5") << a << int64_t(5) << 0 << 4.000e-5;
    QTest::addRow("exampleA step34") << a << int64_t(34) << 0 << 2.0824e-5;
    QTest::addRow("exampleA step63") << a << int64_t(63) << 0 << 6.279e-7;
    QTest::addRow("exampleA step64") << a << int64_t(64) << 1 << 6.000e-7;

    const CosineLrParams b = cosineParams(100, 2.0, 10, 1e-4, 1e-6, 0.5);
    QTest::addRow("exampleB step99") << b << int64_t(99) << 0 << 1.030e-6;
    QTest::addRow("exampleB step100") << b << int64_t(100) << 1 << 1.000e-6;
    QTest::addRow("exampleB step109") << b << int64_t(109) << 1 << 4.510e-5;
    QTest::addRow("exampleB step110") << b << int64_t(110) << 1 << 5.000e-5;
    QTest::addRow("exampleB step250") << b << int64_t(250) << 1 << 8.907e-6;
    QTest::addRow("exampleB step300") << b << int64_t(300) << 2 << 1.000e-6;
    QTest::addRow("exampleB step310") << b << int64_t(310) << 2 << 2.500e-5;

    const CosineLrParams c = cosineParams(1000, 1.0, 100, 5e-5, 1e-7, 0.9);
    QTest::addRow("exampleC step2550") << c << int64_t(2550) << 2 << 2.030e-5;
    QTest::addRow("exampleC step2050") << c << int64_t(2050) << 2 << 2.030e-5;
    QTest::addRow("exampleC step2000") << c << int64_t(2000) << 2 << 1e-7;
}

void TestLrSchedule::cosineWorkedExamples()
{
    QFETCH(CosineLrParams, params);
    QFETCH(int64_t, step);
    QFETCH(int, cycle);
    QFETCH(double, lr);

    const CosineLrSchedule schedule(params, 100000);
    QCOMPARE(schedule.cycleIndex(step), cycle);
    const double actual = schedule.learningRate(step);
    QVERIFY2(isClose(actual, lr, kExampleRtol), qPrintable(lrMismatch(step, actual, lr)));
}

void TestLrSchedule::cosineCycleEnds_data()
{
    QTest::addColumn<CosineLrParams>("params");
    QTest::addColumn<QList<int64_t>>("cycleStarts");

    // Example A: the save after the update that made hn.step = 64 is `name-65.pt`.
    QTest::addRow("exampleA") << cosineParams(64, 1.0, 5, 4e-5, 6e-7, 1.0)
                              << QList<int64_t>{64, 128, 192};
    QTest::addRow("exampleB") << cosineParams(100, 2.0, 10, 1e-4, 1e-6, 0.5)
                              << QList<int64_t>{100, 300, 700};
    // Fractional lengths 150, 225, 337.5: starts truncated to 100, 250, 475.
    QTest::addRow("fractionalMult")
        << cosineParams(100, 1.5, 10, 1e-4, 1e-6, 1.0) << QList<int64_t>{100, 250, 475};
}

void TestLrSchedule::cosineCycleEnds()
{
    QFETCH(CosineLrParams, params);
    QFETCH(QList<int64_t>, cycleStarts);

    const CosineLrSchedule schedule(params, 100000);
    QList<int64_t> found;
    for (int64_t stepsDone = 0; stepsDone <= cycleStarts.last(); ++stepsDone) {
        if (schedule.isCycleEnd(stepsDone)) {
            found << stepsDone;
        }
    }
    QCOMPARE(found, cycleStarts);

    // Every restart begins at min_lr, and each start is step 0 of its cycle.
    for (int64_t start : cycleStarts) {
        QCOMPARE(schedule.learningRate(start), params.minLr);
        QCOMPARE(schedule.position(start).stepInCycle, int64_t(0));
    }
}

// log(243) / log(3) is just below 5, so Python puts step 1210 (the exact start of cycle 5 for
// T0=10, M=3) at the end of cycle 4, and cycle 5 begins a step late. We match Python, not maths.
void TestLrSchedule::cosineKeepsPythonBoundaryRounding()
{
    const CosineLrSchedule schedule(cosineParams(10, 3.0, 2, 1e-3, 1e-5, 1.0), 5000);

    const CosineLrSchedule::Position at1210 = schedule.position(1210);
    QCOMPARE(at1210.cycle, 4);
    QCOMPARE(at1210.stepInCycle, int64_t(810));
    QCOMPARE(at1210.cycleLength, 810.0);
    QCOMPARE(schedule.learningRate(1210), 1e-5);

    const CosineLrSchedule::Position at1211 = schedule.position(1211);
    QCOMPARE(at1211.cycle, 5);
    QCOMPARE(at1211.stepInCycle, int64_t(1));
    QVERIFY(!schedule.isCycleEnd(1210));
    QVERIFY(schedule.isCycleEnd(1211));
}

// --- webui string: spec §3.7 -----------------------------------------------------------------

void TestLrSchedule::stringParsing_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<int64_t>("maxSteps");
    QTest::addColumn<int64_t>("initialStep");
    QTest::addColumn<QString>("segments");

    QTest::addRow("bareRate") << "0.005" << int64_t(50) << int64_t(0) << "0.005:50";
    QTest::addRow("specExample") << "5e-5:100, 5e-6:1500, 5e-7" << int64_t(3000) << int64_t(0)
                                 << "5e-05:100, 5e-06:1500, 5e-07:3000";
    QTest::addRow("clampsAndStopsPastMax") << "1e-3:100, 1e-4:1000, 1e-5:10000" << int64_t(600)
                                           << int64_t(0) << "0.001:100, 0.0001:600";
    QTest::addRow("endAtMaxKeepsParsing")
        << "1e-3:40, 1e-4:50, 1e-5" << int64_t(40) << int64_t(0) << "0.001:40, 0.0001:40";
    QTest::addRow("minusOneRunsToMax")
        << "1e-3:10, 1e-5:-1, 1e-6:30" << int64_t(40) << int64_t(0) << "0.001:10, 1e-05:40";
    QTest::addRow("resumeSkipsDoneItems")
        << "5e-5:100, 5e-6:1500, 5e-7" << int64_t(600) << int64_t(150) << "5e-06:600";
    QTest::addRow("resumeAtItemEnd")
        << "5e-5:100, 5e-6:200" << int64_t(600) << int64_t(100) << "5e-06:200";
    QTest::addRow("otherNegativeStepSkipped")
        << "1e-3:-5, 1e-4" << int64_t(40) << int64_t(0) << "0.0001:40";
    QTest::addRow("whitespaceAndEmptyItems")
        << " 1e-3 : 10 ,, 1e-4 , " << int64_t(40) << int64_t(0) << "0.001:10, 0.0001:40";
    QTest::addRow("extraColonMeansBareRate")
        << "1e-3:10:20, 1e-4" << int64_t(40) << int64_t(0) << "0.001:40";
    QTest::addRow("skippedRateNotRead")
        << "fast:50, 1e-4" << int64_t(100) << int64_t(60) << "0.0001:100";
}

void TestLrSchedule::stringParsing()
{
    QFETCH(QString, text);
    QFETCH(int64_t, maxSteps);
    QFETCH(int64_t, initialStep);
    QFETCH(QString, segments);

    QCOMPARE(segmentsText(parseLearnRateString(text, maxSteps, initialStep)), segments);
}

void TestLrSchedule::stringRatesAndFinish_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<int64_t>("maxSteps");
    QTest::addColumn<QList<int64_t>>("steps");
    QTest::addColumn<QList<double>>("rates");
    QTest::addColumn<int64_t>("finishStep"); // -1: none

    QTest::addRow("specExample") << "5e-5:100, 5e-6:1500, 5e-7" << int64_t(3000)
                                 << QList<int64_t>{0, 99, 100, 1499, 1500, 2999}
                                 << QList<double>{5e-5, 5e-5, 5e-6, 5e-6, 5e-7, 5e-7}
                                 << int64_t(-1);
    QTest::addRow("endsBeforeMax") << "1e-5:1000" << int64_t(5000) << QList<int64_t>{0, 999}
                                   << QList<double>{1e-5, 1e-5} << int64_t(1000);
    // webui advances one item per apply(): an item ending before the previous one still gets
    // the step at which it is entered.
    QTest::addRow("decreasingEnds")
        << "1e-3:100, 1e-4:50" << int64_t(300) << QList<int64_t>{99, 100}
        << QList<double>{1e-3, 1e-4} << int64_t(101);
    QTest::addRow("endAtMaxThenMore") << "1e-3:40, 1e-4:50" << int64_t(40) << QList<int64_t>{0, 39}
                                      << QList<double>{1e-3, 1e-3} << int64_t(-1);
}

void TestLrSchedule::stringRatesAndFinish()
{
    QFETCH(QString, text);
    QFETCH(int64_t, maxSteps);
    QFETCH(QList<int64_t>, steps);
    QFETCH(QList<double>, rates);
    QFETCH(int64_t, finishStep);

    const StepStringLrSchedule schedule(text, maxSteps);
    for (qsizetype i = 0; i < steps.size(); ++i) {
        QCOMPARE(schedule.learningRate(steps[i]), rates[i]);
    }
    QCOMPARE(schedule.finishStep().value_or(-1), finishStep);
    QCOMPARE(schedule.endStep(), finishStep >= 0 ? finishStep : maxSteps);
}

void TestLrSchedule::schedulesWithoutCycles()
{
    const auto string = makeLrSchedule(stringSpec(QStringLiteral("1e-3:10, 1e-4")));
    const auto constant = makeLrSchedule(constantSpec(1e-5));
    for (const LrSchedule* schedule : {string.get(), constant.get()}) {
        for (int64_t step : {0, 1, 10, 11, 599}) {
            QCOMPARE(schedule->cycleIndex(step), 0);
            QVERIFY(!schedule->isCycleEnd(step));
        }
    }
    QCOMPARE(string->learningRate(10), 1e-4);
}

void TestLrSchedule::constantSchedule()
{
    const auto schedule = makeLrSchedule(constantSpec(2.5e-5, 700));
    QCOMPARE(schedule->maxSteps(), int64_t(700));
    QVERIFY(!schedule->finishStep());
    QCOMPARE(schedule->endStep(), int64_t(700));
    QCOMPARE(schedule->learningRate(0), 2.5e-5);
    QCOMPARE(schedule->learningRate(699), 2.5e-5);
}

// --- validation -------------------------------------------------------------------------------

void TestLrSchedule::invalidSpecs_data()
{
    QTest::addColumn<LrScheduleSpec>("spec");
    QTest::addColumn<LrSpecField>("field");
    QTest::addColumn<QString>("named"); // the message must contain it

    using F = LrSpecField;
    QTest::addRow("zeroSteps") << constantSpec(1e-5, 0) << F::MaxSteps << "max_steps";
    QTest::addRow("negativeStart")
        << stringSpec("1e-5", 600, -1) << F::InitialStep << "initial_step";
    QTest::addRow("negativeRate") << constantSpec(-1e-5) << F::LearnRate << "learn_rate";
    QTest::addRow("nanRate") << constantSpec(std::nan("")) << F::LearnRate << "learn_rate";

    QTest::addRow("emptyString") << stringSpec(" ") << F::LearnRateString << "learn_rate";
    QTest::addRow("floatStep") << stringSpec("5e-5:1e3") << F::LearnRateString << "1e3";
    QTest::addRow("decimalStep") << stringSpec("5e-5:100.0") << F::LearnRateString << "100.0";
    QTest::addRow("wordRate") << stringSpec("fast:100") << F::LearnRateString << "fast";
    QTest::addRow("missingRate") << stringSpec(":100") << F::LearnRateString << ":100";
    QTest::addRow("negativeStringRate") << stringSpec("-1e-5") << F::LearnRateString << "-1e-5";
    QTest::addRow("infiniteStringRate") << stringSpec("inf") << F::LearnRateString << "inf";
    QTest::addRow("nothingLeftOnResume")
        << stringSpec("1e-5:100", 300, 200) << F::LearnRateString << "200";

    QTest::addRow("zeroCycleSteps")
        << cosineSpecWith([](CosineLrParams& p) { p.firstCycleSteps = 0; }) << F::FirstCycleSteps
        << "first_cycle_steps";
    QTest::addRow("negativeWarmup") << cosineSpecWith([](CosineLrParams& p) { p.warmupSteps = -1; })
                                    << F::WarmupSteps << "warmup_steps";
    QTest::addRow("warmupAsLongAsCycle")
        << cosineSpecWith([](CosineLrParams& p) { p.warmupSteps = 64; }) << F::WarmupSteps
        << "first_cycle_steps";
    QTest::addRow("multBelowOne") << cosineSpecWith([](CosineLrParams& p) { p.cycleMult = 0.5; })
                                  << F::CycleMult << "cycle_mult";
    QTest::addRow("nanMult") << cosineSpecWith([](CosineLrParams& p) { p.cycleMult = NAN; })
                             << F::CycleMult << "cycle_mult";
    QTest::addRow("gammaAboveOne")
        << cosineSpecWith([](CosineLrParams& p) { p.gamma = 1.5; }) << F::Gamma << "gamma";
    QTest::addRow("negativeGamma")
        << cosineSpecWith([](CosineLrParams& p) { p.gamma = -0.1; }) << F::Gamma << "gamma";
    QTest::addRow("negativeMinLr")
        << cosineSpecWith([](CosineLrParams& p) { p.minLr = -1e-7; }) << F::MinLr << "min_lr";
    QTest::addRow("zeroMaxLr") << cosineSpecWith([](CosineLrParams& p) { p.maxLr = 0.0; })
                               << F::MaxLr << "max_lr";
    QTest::addRow("infiniteMaxLr")
        << cosineSpecWith([](CosineLrParams& p) { p.maxLr = INFINITY; }) << F::MaxLr << "max_lr";
}

void TestLrSchedule::invalidSpecs()
{
    QFETCH(LrScheduleSpec, spec);
    QFETCH(LrSpecField, field);
    QFETCH(QString, named);

    const std::optional<LrSpecProblem> problem = findLrSpecProblem(spec);
    QVERIFY(problem.has_value());
    QCOMPARE(problem->field, field);
    QVERIFY2(problem->message.contains(named), qPrintable(problem->message));

    try {
        makeLrSchedule(spec);
        QFAIL("makeLrSchedule accepted an invalid spec");
    } catch (const Error& error) {
        QCOMPARE(error.message(), problem->message);
    }
}

void TestLrSchedule::stringErrorExplainsSyntax()
{
    const QString text = QStringLiteral("5e-5:1e3, 5e-6");
    try {
        parseLearnRateString(text, 600);
        QFAIL("a float step was accepted");
    } catch (const Error& error) {
        QVERIFY2(error.message().contains(text), qPrintable(error.message()));
        QVERIFY2(error.message().contains(QStringLiteral("rate:step")),
                 qPrintable(error.message()));
        QVERIFY2(error.message().contains(QStringLiteral("whole number")),
                 qPrintable(error.message()));
    }

    // The defaults (webui's "0.00001" string, Gamma's cosine UI defaults) are valid.
    QVERIFY(!findLrSpecProblem(LrScheduleSpec{}));
    QVERIFY(!findLrSpecProblem(cosineSpec(CosineLrParams{})));
}

QTEST_GUILESS_MAIN(TestLrSchedule)

#include "TestLrSchedule.moc"
