#!/usr/bin/env python3
"""Reference values for dermrobust_core::metrics.

Generated with (exact versions used for the numbers pasted into
crates/dermrobust-core/tests/metrics_reference.rs):
    Python 3.11.7, scikit-learn 1.9.1, statsmodels 0.15.0, numpy 2.4.6, scipy 1.17.1

Usage:
    pip install scikit-learn statsmodels numpy
    python3 tools/reference/metrics_reference.py > /tmp/metrics_reference_out.rs

The output is a block of Rust literals (consts) that is pasted verbatim into
the "GENERATED" section of crates/dermrobust-core/tests/metrics_reference.rs.
Every float is printed with Python repr(), i.e. the shortest string that
round-trips to the same f64.

All inputs are fixed literals.  The "seed0" binary case and the 4-class case
were generated ONCE with numpy and pasted below, so the script does not depend
on numpy's RNG stream staying stable.  The generating code was:

    rng = np.random.default_rng(0)
    lab = rng.random(60) < 0.4
    sc = np.clip(rng.normal(0.35 + 0.3 * lab, 0.2), 0.0, 1.0)
    y = rng.choice(4, size=40, p=[0.4, 0.3, 0.22, 0.08])
    logits = rng.normal(0.0, 1.0, size=(40, 4)); logits[np.arange(40), y] += 1.2
    p = softmax(logits, axis=1)
    logits2 = logits + rng.normal(0.0, 0.6, size=(40, 4)); p2 = softmax(logits2, axis=1)
and (fresh default_rng(0)) a permutation of 40 McNemar pairs (22 both right,
9 only A right, 3 only B right, 6 both wrong) and of the 8 "hand" items.
"""
import sys
from fractions import Fraction
import warnings

import numpy as np
import scipy
import sklearn
import statsmodels
from sklearn.metrics import (
    auc,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from statsmodels.stats.contingency_tables import mcnemar

# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

# Small hand case, P = 4, N = 4 (all rates are dyadic, so exact in f64).
# Sorted by score the labels read T,T,F,T,F,T,F,F, which makes Youden's J
# tie exactly (J = 0.5) at thresholds 0.8, 0.6 and 0.4: the first maximum
# in roc_curve order (highest threshold, 0.8) must win.
HAND_LABELS = [1, 0, 0, 1, 1, 0, 0, 1]
HAND_SCORES = [0.4, 0.1, 0.35, 0.6, 0.8, 0.7, 0.5, 0.9]
HAND_THRESHOLDS = [0.35, 0.5, 0.65, 0.1, 0.9]

# Heavy ties (decision-value style scores incl. negatives and zero):
# 18 items, only 4 distinct scores, every tie group mixes both labels.
TIES_LABELS = [1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1]
TIES_SCORES = [0.0, 0.0, 2.0, -1.5, 0.0, 1.25, 0.0, 1.25, 2.0, -1.5, 0.0,
               -1.5, 1.25, 2.0, 2.0, -1.5, 1.25, 0.0]
TIES_THRESHOLDS = [0.0, 1.25, 2.0, -1.5, 0.5]

# Degenerate tie case: all scores identical.
ALLTIED_LABELS = [1, 0, 0, 1, 0, 0]
ALLTIED_SCORES = [0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
ALLTIED_THRESHOLDS = [0.7]

# 60 items, numpy default_rng(0) (see module docstring), 25 positives.
SEED0_LABELS = [0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1]
SEED0_SCORES = [0.26271295057135574, 0.4160396184454271, 0.9978735754260267, 0.5508178543115695, 0.4157939258920404, 0.29828549090521517, 0.6666945757604245, 0.6140721974163679, 0.47667052456498304, 0.0, 0.36040579485197727, 0.7867372381553068, 0.550792315168434, 0.5264185910584798, 0.7144022726656647, 0.3859138059973412, 0.21769439563695617, 0.5370099976228044, 0.6598109227650623, 0.7504785167290511, 0.6877038385024931, 0.5233611819615546, 0.2744872989534383, 0.13177077647616087, 0.09446396672267837, 0.7760822981536463, 0.46623316248256114, 0.6089117638882233, 0.19907884174801374, 0.6878214904887346, 0.29252245843826674, 0.9648816557689173, 0.5634428305634805, 0.20290334153154496, 0.39995707431173333, 0.8562906169738944, 0.3822019153430689, 0.23289423517533264, 0.08175605718466616, 0.3696959570165143, 0.4505365699749731, 0.8479426066571609, 0.31714108147494185, 0.43512702835431294, 0.8246084305243413, 0.09392121105708534, 0.5073863809881455, 0.47420357070801966, 0.19997176528508154, 0.42727391951326116, 0.23367183271809933, 0.6718559394955627, 0.3348596947558354, 0.6904228790087918, 0.7888343873414015, 0.49832604982031803, 0.6341964044623832, 0.495218757789553, 0.8187465324606535, 0.8829727962222056]
SEED0_THRESHOLDS = [0.5, 0.4160396184454271, 0.0, 0.9]

# 4-class case, 40 items; class counts 16/12/9/3 (class 3 is rare).
MC_Y = [3, 1, 0, 0, 2, 0, 0, 0, 1, 1, 2, 1, 0, 1, 2, 1, 3, 0, 1, 1, 2, 0, 1, 2, 0, 2, 1, 2, 0, 0, 0, 1, 0, 2, 3, 0, 2, 0, 0, 1]
MC_PROBS = [[0.02038504903526814, 0.37468540017578955, 0.16657581784069853, 0.4383537329482438], [0.03396269154722612, 0.8782165342953572, 0.040919890924158646, 0.04690088323325798], [0.06610178880323203, 0.4574226249405076, 0.22046890437229513, 0.2560066818839653], [0.3752986459806978, 0.26953659130402363, 0.15617797185200397, 0.19898679086327464], [0.08162545701361706, 0.021768113093935497, 0.8828792952017531, 0.013727134690694366], [0.4642871063376141, 0.14488166523317172, 0.06265100074532806, 0.3281802276838861], [0.4795859816234, 0.1140212197498428, 0.2968107189804639, 0.10958207964629323], [0.8589584316085344, 0.09167004203807852, 0.040141373781458246, 0.009230152571928834], [0.022882248970676467, 0.8329265287723739, 0.08043992155006899, 0.06375130070688052], [0.7111412184588233, 0.1265921081977513, 0.07655133913035518, 0.08571533421307019], [0.41692086293674974, 0.11946506037534513, 0.41702296678843404, 0.046591109899471086], [0.18340634685583854, 0.6575324525669622, 0.05492551608669453, 0.10413568449050473], [0.13712111587739684, 0.09384998102021189, 0.5967281611647098, 0.1723007419376814], [0.7098191280697613, 0.10642643118285063, 0.12582991553139322, 0.057924525215994796], [0.34746149919218494, 0.1959039834197482, 0.3737689807153068, 0.08286553667276009], [0.851943890072046, 0.12201437542749592, 0.005284739029620375, 0.020756995470837637], [0.126924338552708, 0.03907734898137348, 0.2511367533574973, 0.5828615591084212], [0.6573136783696217, 0.1437799546344667, 0.08441110542269675, 0.11449526157321492], [0.013897139791657732, 0.6713042183501341, 0.2975335257908409, 0.017265116067367397], [0.23609532698014213, 0.43589734568476673, 0.29355481830899416, 0.034452509026096985], [0.0367731705506691, 0.42156031976356895, 0.2707984846851034, 0.2708680250006585], [0.2087151836200941, 0.5962183300683372, 0.125105528810383, 0.06996095750118561], [0.7661416322451807, 0.1432327843743036, 0.01759684590505726, 0.07302873747545832], [0.12957405563141947, 0.3912755986498292, 0.17794129453464216, 0.3012090511841092], [0.7855883167238972, 0.05172789145666151, 0.11873907281618247, 0.043944719003258886], [0.7797450187604342, 0.03692981912580102, 0.15760382535810888, 0.025721336755655827], [0.10548885293885442, 0.49218296943916906, 0.3213451240928569, 0.0809830535291196], [0.04548412354840999, 0.013285164005790823, 0.07949825438271342, 0.8617324580630858], [0.8955221795584877, 0.043586163785213884, 0.02499726842163131, 0.03589438823466715], [0.645198543391255, 0.20560908832374933, 0.0943384027776199, 0.054853965507375806], [0.8181390085813347, 0.09334844436928301, 0.040857309257394656, 0.04765523779198751], [0.2640090078606803, 0.07900161034373425, 0.5032945118879786, 0.15369486990760697], [0.29456499813086745, 0.12747516726858868, 0.5029474538871865, 0.07501238071335743], [0.024880472357508815, 0.19799005218998664, 0.7371074073317326, 0.04002206812077195], [0.36602730706287534, 0.15581631294807397, 0.2819141069729255, 0.19624227301612523], [0.5228160787713715, 0.22805669062558473, 0.12946473437854955, 0.11966249622449421], [0.00424293252293501, 0.2394056918049691, 0.597099939586072, 0.15925143608602402], [0.34636115732503636, 0.20714623701535526, 0.295946126611058, 0.1505464790485504], [0.24172532419649959, 0.3957885120829647, 0.038311843953556204, 0.3241743197669794], [0.3119512362046998, 0.38828079345937183, 0.1955962374702864, 0.10417173286564196]]
MC_PROBS_AFTER = [[0.036483885750715844, 0.5510678945923392, 0.1423662677501998, 0.27008195190674505], [0.02395649540289594, 0.9180682852216421, 0.02249429426776261, 0.03548092510769945], [0.051735882996788975, 0.4671831442192314, 0.18155506556099293, 0.2995259072229868], [0.1628975846003012, 0.4260179865585822, 0.1461012406841171, 0.26498318815699956], [0.1137916500957638, 0.04510878180064643, 0.7931916310457041, 0.047907937057885736], [0.1510128330059676, 0.07020099372592138, 0.0652331479955208, 0.7135530252725901], [0.6375333879324939, 0.11054770756446586, 0.1420030042751947, 0.10991590022784545], [0.7294690472103845, 0.21725231762485764, 0.05010923461886997, 0.0031694005458880402], [0.0824564277586349, 0.7018927430435195, 0.050687323678091874, 0.1649635055197538], [0.6757858921551314, 0.09942338390290953, 0.08546371789274974, 0.13932700604920928], [0.332661248298932, 0.023014605987174856, 0.608171387257427, 0.03615275845646623], [0.21132702562141198, 0.5820297125377072, 0.044424621118543735, 0.16221864072233708], [0.0694906985637231, 0.04434106732856233, 0.7258565494117816, 0.1603116846959331], [0.537925192641572, 0.15876967818658624, 0.2744613265462699, 0.02884380262557181], [0.19245353194477238, 0.27434152181578686, 0.45768365910679626, 0.07552128713264447], [0.9563909723620955, 0.035495475852077074, 0.001215960080262141, 0.00689759170556518], [0.2029719901078808, 0.036011607140893465, 0.2785554422169826, 0.48246096053424314], [0.5515127603048282, 0.09579139173272451, 0.12811647548494395, 0.2245793724775033], [0.012446463903027942, 0.7083115302140288, 0.25086838541511863, 0.028373620467824642], [0.15778267348261735, 0.7187044652807433, 0.09638306400831495, 0.027129797228324457], [0.05416382804333238, 0.383196809615697, 0.4336966689115865, 0.12894269342938416], [0.5889130531476463, 0.21090471112628695, 0.17192668565732505, 0.02825555006874162], [0.8799701672443293, 0.06547038412834208, 0.0111424769424182, 0.043416971684910446], [0.31574787405820826, 0.4061549320491291, 0.03776544228764863, 0.240331751605014], [0.7395057817014945, 0.033483005822243554, 0.1588789755933223, 0.0681322368829396], [0.6261877512360655, 0.013257699280219495, 0.3173260780800721, 0.04322847140364281], [0.041318312423897156, 0.8173266061132533, 0.12216903478691014, 0.019186046675939518], [0.014330172626114735, 0.00877473149534824, 0.01567067317437432, 0.9612244227041626], [0.783320973729314, 0.1157513552507479, 0.05190915960106621, 0.049018511418871875], [0.779296221618639, 0.052805260674155224, 0.13455119733175802, 0.03334732037544783], [0.6638938038674616, 0.1644151657639611, 0.08671060858696174, 0.08498042178161551], [0.39371781585685395, 0.06788756055862387, 0.48844575550387215, 0.04994886808065006], [0.29068677449753055, 0.16542922965168283, 0.46066574579066843, 0.08321825006011821], [0.02956636554476064, 0.3023709097809757, 0.6382050241956236, 0.029857700478640115], [0.20808000558496462, 0.08527169194103565, 0.532337280190952, 0.1743110222830478], [0.8004868721374295, 0.09998295295631487, 0.03864167764174842, 0.06088849726450723], [0.00654425178722231, 0.35225743692402883, 0.5649085718052748, 0.07628973948347416], [0.41719081906955774, 0.22572376631926738, 0.3134803532972359, 0.043605061313938945], [0.1521096592981597, 0.37180523684448286, 0.10020030588473022, 0.37588479797262725], [0.5986486147593819, 0.25386422584790935, 0.13917530505017647, 0.008311854342532248]]

# Multiclass AUROC with a class absent from y_true (n_classes = 3, class 2
# never occurs).  sklearn cannot score this directly; per-class values for
# the present classes are plain binary one-vs-rest roc_auc_score.
ABSENT_Y = [0, 1, 1, 0, 1, 0, 0, 1]
ABSENT_PROBS = [[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25],
                [0.1, 0.8, 0.1], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]]

# Confusion-matrix edge case: 3 classes; class 2 is predicted but never true,
# class 1 is true but never predicted.
EDGE_CM_TRUE = [0, 0, 0, 1, 1, 0, 1, 0, 0, 1]
EDGE_CM_PRED = [0, 2, 0, 0, 2, 0, 0, 2, 0, 0]
EDGE_CM_N = 3

# McNemar: 40 literal pairs (22 both right, 9 only A right, 3 only B right,
# 6 both wrong), order permuted once with numpy default_rng(0).
MC9_A = [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 0]
MC9_B = [1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1]
# Count-specified McNemar tables (both_right, only_a_right, only_b_right, both_wrong);
# the Rust test expands these into boolean vectors.
MCNEMAR_COUNT_CASES = [
    ("large", (700, 130, 95, 75)),
    ("equal_discordance", (10, 5, 5, 2)),   # b == c: statsmodels gives (0-1)^2/10 = 0.1, NOT 0
    ("one_sided", (3, 0, 6, 1)),
    ("single_discordant", (4, 1, 0, 4)),    # (|1-0|-1)^2/1 = 0 -> p = 1
    ("very_large", (5000, 1200, 1000, 300)),
]

# Change metrics (Maron et al.): class change uses argmax of MC_PROBS vs
# MC_PROBS_AFTER; mean absolute change uses column 0 of both.
CHANGE_HAND_BEFORE = [0, 1, 2, 1, 0]
CHANGE_HAND_AFTER = [0, 2, 2, 1, 1]
MAC_HAND_BEFORE = [0.1, 0.5, 0.9, 0.25]
MAC_HAND_AFTER = [0.3, 0.5, 0.4, 0.75]


# --------------------------------------------------------------------------
# Rust literal printers
# --------------------------------------------------------------------------

def f(x):
    x = float(x)
    if x == float("inf"):
        return "f64::INFINITY"
    if x == float("-inf"):
        return "f64::NEG_INFINITY"
    if x != x:
        raise ValueError("NaN in reference output")
    r = repr(x)
    if "e" not in r and "." not in r:
        r += ".0"
    return r


def fl(xs):
    return "&[" + ", ".join(f(x) for x in xs) + "]"


def bl(xs):
    return "&[" + ", ".join("true" if x else "false" for x in xs) + "]"


def ul(xs):
    return "&[" + ", ".join(str(int(x)) for x in xs) + "]"


def opt(x):
    return "None" if x is None else "Some(" + f(x) + ")"


def rows(m):
    return "&[" + ", ".join("&[" + ", ".join(f(v) for v in row) + "]" for row in m) + "]"


def urows(m):
    return "&[" + ", ".join(ul(row) for row in m) + "]"


# --------------------------------------------------------------------------
# Binary cases
# --------------------------------------------------------------------------

def at_threshold_expected(labels, scores, t):
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(scores, dtype=float) >= t
    tp = int(np.sum(pred & y)); fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y)); tn = int(np.sum(~pred & ~y))
    assert tp + fp > 0, "precision undefined; pick another threshold"
    sens = tp / (tp + fn)
    spec = tn / (tn + fp)
    prec = tp / (tp + fp)
    acc = (tp + tn) / len(labels)
    # cross-check with sklearn's confusion matrix
    cm = confusion_matrix(y.astype(int), pred.astype(int), labels=[0, 1])
    assert (cm[0, 0], cm[0, 1], cm[1, 0], cm[1, 1]) == (tn, fp, fn, tp)
    return dict(threshold=t, sensitivity=sens, specificity=spec, precision=prec,
                accuracy=acc, youden_j=sens + spec - 1.0)


def youden_expected(labels, scores):
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    # exact rational J at every finite threshold, to detect ties robustly
    P = sum(1 for v in labels if v); N = len(labels) - P
    js = []
    for t in thr[1:]:
        tp = sum(1 for l, s in zip(labels, scores) if l and s >= t)
        fp = sum(1 for l, s in zip(labels, scores) if (not l) and s >= t)
        js.append(Fraction(tp, P) - Fraction(fp, N))
    jmax = max(js)
    winners = [i for i, j in enumerate(js) if j == jmax]
    first = winners[0]
    if len(winners) > 1:
        # ties are only acceptable when every rate is exactly representable,
        # otherwise floating rounding could break the tie differently
        assert (P & (P - 1)) == 0 and (N & (N - 1)) == 0, "inexact Youden tie"
    else:
        second = max([j for j in js if j != jmax], default=None)
        assert second is None or float(jmax - second) > 1e-9
    # float argmax over finite thresholds (first maximum) must agree
    assert int(np.argmax(tpr[1:] - fpr[1:])) == first
    return at_threshold_expected(labels, scores, float(thr[1 + first])), len(winners)


def at_literal(d):
    return ("AtExpected { threshold: %s, sensitivity: %s, specificity: %s, precision: %s, "
            "accuracy: %s, youden_j: %s }" % (f(d["threshold"]), f(d["sensitivity"]),
                                              f(d["specificity"]), f(d["precision"]),
                                              f(d["accuracy"]), f(d["youden_j"])))


def binary_case(const, name, labels, scores, thresholds, out, summary):
    labels = [bool(v) for v in labels]
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    auroc = roc_auc_score(y, s)
    ap = average_precision_score(y, s)
    fpr, tpr, rthr = roc_curve(y, s, drop_intermediate=False)
    prec, rec, pthr = precision_recall_curve(y, s, drop_intermediate=False)
    prauc = auc(rec, prec)
    # sanity: these are the documented relationships
    assert np.isinf(rthr[0]) and rthr[0] > 0
    assert abs(ap - max(0.0, -np.sum(np.diff(rec) * prec[:-1]))) < 1e-15
    assert len(prec) == len(rec) == len(pthr) + 1
    assert list(pthr) == sorted(set(scores))          # ALL distinct scores, ascending
    assert list(rthr[1:]) == sorted(set(scores), reverse=True)
    ats = [at_threshold_expected(labels, scores, t) for t in thresholds]
    yd, nwin = youden_expected(labels, scores)
    summary.append("%s: n=%d P=%d roc_auc=%r ap=%r pr_auc=%r youden_threshold=%r (tied maxima: %d)"
                   % (name, len(labels), sum(labels), auroc, ap, prauc, yd["threshold"], nwin))
    o = []
    o.append("const %s: BinaryCase = BinaryCase {" % const)
    o.append("    name: %r," % name if False else '    name: "%s",' % name)
    o.append("    labels: %s," % bl(labels))
    o.append("    scores: %s," % fl(scores))
    o.append("    roc_auc: %s," % f(auroc))
    o.append("    average_precision: %s," % f(ap))
    o.append("    pr_auc: %s," % f(prauc))
    o.append("    roc_fpr: %s," % fl(fpr))
    o.append("    roc_tpr: %s," % fl(tpr))
    o.append("    roc_thresholds: %s," % fl(rthr))
    o.append("    pr_precision: %s," % fl(prec))
    o.append("    pr_recall: %s," % fl(rec))
    o.append("    pr_thresholds: %s," % fl(pthr))
    o.append("    at: &[")
    for d in ats:
        o.append("        %s," % at_literal(d))
    o.append("    ],")
    o.append("    youden: %s," % at_literal(yd))
    o.append("};")
    out.append("\n".join(o))


# --------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------

def cm_case(const, name, y_true, y_pred, n, out, summary):
    labels = list(range(n))
    present = sorted(set(y_true) | set(y_pred))
    # every class must occur in y_true or y_pred so that sklearn's default
    # label set equals 0..n (otherwise macro averages are ambiguous)
    assert present == labels, "a class occurs in neither y_true nor y_pred"
    C = confusion_matrix(y_true, y_pred, labels=labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bacc = balanced_accuracy_score(y_true, y_pred)
        p, r, f1, sup = precision_recall_fscore_support(y_true, y_pred, average=None,
                                                        zero_division=0)
        mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, average="macro",
                                                        zero_division=0)
        wp, wr, wf, _ = precision_recall_fscore_support(y_true, y_pred, average="weighted",
                                                        zero_division=0)
        # same thing with an explicit labels=0..n (must agree, see assert above)
        mp2, mr2, mf2, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                           average="macro", zero_division=0)
    assert (mp, mr, mf) == (mp2, mr2, mf2)
    acc = float(np.trace(C) / C.sum())
    total = C.sum()
    o = []
    o.append("const %s: CmCase = CmCase {" % const)
    o.append('    name: "%s",' % name)
    o.append("    n_classes: %d," % n)
    o.append("    y_true: %s," % ul(y_true))
    o.append("    y_pred: %s," % ul(y_pred))
    o.append("    counts: %s," % urows(C))
    o.append("    accuracy: %s," % f(acc))
    o.append("    balanced_accuracy: %s," % f(bacc))
    o.append("    per_class: &[")
    for k in labels:
        tp = C[k, k]; fn = C[k, :].sum() - tp; fp = C[:, k].sum() - tp
        tn = total - tp - fn - fp
        spec = None if tn + fp == 0 else tn / (tn + fp)
        fpr = None if tn + fp == 0 else fp / (fp + tn)
        fnr = None if fn + tp == 0 else fn / (fn + tp)
        o.append("        ClassExpected { precision: %s, recall: %s, f1: %s, specificity: %s, "
                 "fpr: %s, fnr: %s, support: %d },"
                 % (f(p[k]), f(r[k]), f(f1[k]), opt(spec), opt(fpr), opt(fnr), int(sup[k])))
    o.append("    ],")
    o.append("    macro_avg: [%s, %s, %s]," % (f(mp), f(mr), f(mf)))
    o.append("    weighted_avg: [%s, %s, %s]," % (f(wp), f(wr), f(wf)))
    o.append("};")
    out.append("\n".join(o))
    summary.append("%s: counts=%s acc=%r bacc=%r macro=%r weighted=%r"
                   % (name, C.tolist(), acc, bacc, (mp, mr, mf), (wp, wr, wf)))


# --------------------------------------------------------------------------
# Multiclass AUROC
# --------------------------------------------------------------------------

def mc_auroc_case(const, name, y, probs, n, out, summary):
    y = np.asarray(y); P = np.asarray(probs, dtype=float)
    per = []
    for k in range(n):
        yk = (y == k).astype(int)
        per.append(None if yk.sum() == 0 else roc_auc_score(yk, P[:, k]))
    if all(v is not None for v in per):
        macro = roc_auc_score(y, P, multi_class="ovr", average="macro")
        weighted = roc_auc_score(y, P, multi_class="ovr", average="weighted")
        assert abs(macro - np.mean(per)) < 1e-15
        macro_s, weighted_s = f(macro), f(weighted)
    else:
        macro_s = weighted_s = "f64::NAN"   # not defined by sklearn; not checked
        macro = weighted = None
    o = []
    o.append("const %s: McAurocCase = McAurocCase {" % const)
    o.append('    name: "%s",' % name)
    o.append("    n_classes: %d," % n)
    o.append("    y_true: %s," % ul(y))
    o.append("    probs: %s," % rows(P))
    o.append("    per_class: &[%s]," % ", ".join(opt(v) for v in per))
    o.append("    macro_avg: %s," % macro_s)
    o.append("    weighted_avg: %s," % weighted_s)
    o.append("};")
    out.append("\n".join(o))
    summary.append("%s: per_class=%r macro=%r weighted=%r" % (name, per, macro, weighted))


# --------------------------------------------------------------------------
# McNemar
# --------------------------------------------------------------------------

def mcnemar_ref(a, b):
    a = np.asarray(a, dtype=bool); b = np.asarray(b, dtype=bool)
    table = np.array([[np.sum(a & b), np.sum(a & ~b)],
                      [np.sum(~a & b), np.sum(~a & ~b)]], dtype=np.int64)
    res = mcnemar(table, exact=False, correction=True)
    return int(table[0, 1]), int(table[1, 0]), float(res.statistic), float(res.pvalue)


def expand_counts(both, a_only, b_only, neither):
    # must match `expand_counts` in the Rust test (round-robin interleave)
    groups = [[(True, True)] * both, [(True, False)] * a_only,
              [(False, True)] * b_only, [(False, False)] * neither]
    out = []
    i = 0
    while any(i < len(g) for g in groups):
        for g in groups:
            if i < len(g):
                out.append(g[i])
        i += 1
    return [p[0] for p in out], [p[1] for p in out]


def main():
    out, summary = [], []
    hdr = ("// python %s, scikit-learn %s, statsmodels %s, numpy %s, scipy %s"
           % (sys.version.split()[0], sklearn.__version__, statsmodels.__version__,
              np.__version__, scipy.__version__))
    out.append("// ---- GENERATED by tools/reference/metrics_reference.py ----")
    out.append(hdr)

    binary_case("HAND", "hand", HAND_LABELS, HAND_SCORES, HAND_THRESHOLDS, out, summary)
    binary_case("TIES", "ties", TIES_LABELS, TIES_SCORES, TIES_THRESHOLDS, out, summary)
    binary_case("ALL_TIED", "all_tied", ALLTIED_LABELS, ALLTIED_SCORES, ALLTIED_THRESHOLDS,
                out, summary)
    binary_case("SEED0", "seed0", SEED0_LABELS, SEED0_SCORES, SEED0_THRESHOLDS, out, summary)

    mc_auroc_case("MC4", "mc4", MC_Y, MC_PROBS, 4, out, summary)
    mc_auroc_case("MC_ABSENT", "mc_absent_class", ABSENT_Y, ABSENT_PROBS, 3, out, summary)

    mc_pred = [int(np.argmax(r)) for r in MC_PROBS]
    mc_pred_after = [int(np.argmax(r)) for r in MC_PROBS_AFTER]
    cm_case("CM_MC4", "mc4_argmax", MC_Y, mc_pred, 4, out, summary)
    cm_case("CM_MC4_AFTER", "mc4_after_argmax", MC_Y, mc_pred_after, 4, out, summary)
    cm_case("CM_EDGE", "edge", EDGE_CM_TRUE, EDGE_CM_PRED, EDGE_CM_N, out, summary)

    # McNemar
    b, c, st, pv = mcnemar_ref(MC9_A, MC9_B)
    assert (b, c) == (9, 3)
    o = ["const MCNEMAR_LITERAL: McLiteralCase = McLiteralCase {",
         "    a_correct: %s," % bl(MC9_A),
         "    b_correct: %s," % bl(MC9_B),
         "    b: %d, c: %d, statistic: %s, p_value: %s," % (b, c, f(st), f(pv)),
         "};"]
    out.append("\n".join(o))
    summary.append("mcnemar literal: b=%d c=%d stat=%r p=%r" % (b, c, st, pv))
    o = ["const MCNEMAR_COUNTS: &[McCountCase] = &["]
    for name, (n11, n10, n01, n00) in MCNEMAR_COUNT_CASES:
        a, bb = expand_counts(n11, n10, n01, n00)
        b, c, st, pv = mcnemar_ref(a, bb)
        assert (b, c) == (n10, n01)
        o.append('    McCountCase { name: "%s", both: %d, a_only: %d, b_only: %d, neither: %d, '
                 'statistic: %s, p_value: %s },' % (name, n11, n10, n01, n00, f(st), f(pv)))
        summary.append("mcnemar %s: b=%d c=%d stat=%r p=%r" % (name, b, c, st, pv))
    o.append("];")
    out.append("\n".join(o))

    # Change metrics
    pcr_mc = float(np.mean(np.asarray(mc_pred) != np.asarray(mc_pred_after)))
    pcr_hand = float(np.mean(np.asarray(CHANGE_HAND_BEFORE) != np.asarray(CHANGE_HAND_AFTER)))
    col0_b = [r[0] for r in MC_PROBS]; col0_a = [r[0] for r in MC_PROBS_AFTER]
    mac_mc = float(np.mean(np.abs(np.asarray(col0_a) - np.asarray(col0_b))))
    mac_hand = float(np.mean(np.abs(np.asarray(MAC_HAND_AFTER) - np.asarray(MAC_HAND_BEFORE))))
    o = ["const MC4_PRED_BEFORE: &[usize] = %s;" % ul(mc_pred),
         "const MC4_PRED_AFTER: &[usize] = %s;" % ul(mc_pred_after),
         "const MC4_PROBS_AFTER: &[&[f64]] = %s;" % rows(MC_PROBS_AFTER),
         "const PCR_MC4: f64 = %s;" % f(pcr_mc),
         "const CHANGE_HAND_BEFORE: &[usize] = %s;" % ul(CHANGE_HAND_BEFORE),
         "const CHANGE_HAND_AFTER: &[usize] = %s;" % ul(CHANGE_HAND_AFTER),
         "const PCR_HAND: f64 = %s;" % f(pcr_hand),
         "const MAC_MC4_COL0: f64 = %s;" % f(mac_mc),
         "const MAC_HAND_BEFORE: &[f64] = %s;" % fl(MAC_HAND_BEFORE),
         "const MAC_HAND_AFTER: &[f64] = %s;" % fl(MAC_HAND_AFTER),
         "const MAC_HAND: f64 = %s;" % f(mac_hand)]
    out.append("\n".join(o))
    summary.append("change: pcr_mc4=%r pcr_hand=%r mac_mc4_col0=%r mac_hand=%r"
                   % (pcr_mc, pcr_hand, mac_mc, mac_hand))
    out.append("// ---- END GENERATED ----")

    print("\n\n".join(out))
    print()
    print("/* Summary (human readable)")
    print(hdr[3:])
    for line in summary:
        print("   " + line)
    print("*/")


if __name__ == "__main__":
    main()
