"""Evaluation: answer parsers, emotion-wheel machinery and the six tasks' metrics (clean / parity modes).

Public API (see each module):
  parsers        parse_answer, parse_emotion_list, parse_sentiment, parse_intent, parse_erg, parse_eri,
                 extract_emotion_words, emotion_polarity, ParsedAnswer, ErgAnswer, MINTREC_INTENTS, MINTREC2_INTENTS
  emotion_wheel  load_wheels, EmotionWheels, WHEELS
  metrics_mer    wheel_hit_rate, wheel_set_prf         metrics_msa  msa_scores
  metrics_mir    mir_scores                            metrics_erg  erg_scores, distinct_n, COARSE8
  metrics_eri    eri_scores, rouge_l, lcs_length       classification  classification_scores
  scoring        score, score_files, read_predictions, read_ground_truth, parity_quirks, TASKS
"""
