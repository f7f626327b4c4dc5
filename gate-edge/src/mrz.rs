//! ICAO Doc 9303 machine-readable zones: TD3 (passports, 2 × 44) and TD1 (cards, 3 × 30).
//!
//! [`parse`] reads the zone and recomputes every check digit (document number, birth date,
//! expiry date, TD3 personal number, composite); the [`MrzReport`] carries each verdict so a
//! caller can show them all, and [`MrzReport::valid`] says whether the zone can be trusted. Bad
//! structure (line count, length, characters) is an [`MrzError`]. Nothing here panics, whatever
//! the input.
//!
//! ```
//! let report = mizugiwa_gate_edge::mrz::parse(&[
//!     "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
//!     "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
//! ]).unwrap();
//! assert!(report.valid);
//! assert_eq!(report.surname, "ERIKSSON");
//! assert_eq!(report.given_names, "ANNA MARIA");
//! ```

use serde::{Deserialize, Serialize};
use time::{Date, Month};

/// The two layouts read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MrzFormat {
    /// Passport booklets: two lines of 44 characters.
    Td3,
    /// ID cards: three lines of 30 characters.
    Td1,
}

/// What a check digit protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckedField {
    DocumentNumber,
    DateOfBirth,
    DateOfExpiry,
    PersonalNumber,
    Composite,
}

/// One check digit's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDigitVerdict {
    pub field: CheckedField,
    /// The characters the digit is computed over.
    pub data: String,
    /// The character found in the zone.
    pub found: char,
    /// The digit computed from `data`.
    pub expected: u8,
    pub valid: bool,
}

/// Sex as printed in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    #[serde(rename = "M")]
    Male,
    #[serde(rename = "F")]
    Female,
    /// `<` or `X`: unspecified.
    #[serde(rename = "X")]
    Unspecified,
}

/// Everything read from a zone, with the check digit verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrzReport {
    pub format: MrzFormat,
    /// "P", "I", "ID", ... (fillers removed).
    pub document_code: String,
    pub issuing_state: String,
    pub surname: String,
    /// Given names separated by single spaces.
    pub given_names: String,
    /// Fillers removed; TD1 numbers longer than 9 characters are reassembled.
    pub document_number: String,
    pub nationality: String,
    /// `YYMMDD` as printed (`<<` allowed for an unknown day or month).
    pub date_of_birth: String,
    pub sex: Option<Sex>,
    /// `YYMMDD` as printed.
    pub date_of_expiry: String,
    /// TD3 personal number, TD1 optional data of line 1 (fillers removed).
    pub optional_data: String,
    /// TD1 optional data of line 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_data_2: Option<String>,
    pub checks: Vec<CheckDigitVerdict>,
    /// Problems other than check digits (impossible dates, unknown sex code).
    pub problems: Vec<String>,
    /// Every check digit verifies and there are no problems.
    pub valid: bool,
}

impl MrzReport {
    /// The birth date, its century chosen so that it is not after `today` (ICAO leaves the
    /// century out). `None` when the day or month is unknown or the date impossible.
    pub fn birth_date(&self, today: Date) -> Option<Date> {
        let (yy, month, day) = split_yymmdd(&self.date_of_birth)?;
        let this_century = today.year() - today.year().rem_euclid(100);
        let candidate = Date::from_calendar_date(this_century + yy, month, day).ok()?;
        if candidate <= today {
            Some(candidate)
        } else {
            Date::from_calendar_date(this_century - 100 + yy, month, day).ok()
        }
    }

    /// The expiry date (years 00–99 read as 2000–2099: no document in use expired last century).
    pub fn expiry_date(&self) -> Option<Date> {
        let (yy, month, day) = split_yymmdd(&self.date_of_expiry)?;
        Date::from_calendar_date(2000 + yy, month, day).ok()
    }

    /// The verdicts that failed.
    pub fn failed_checks(&self) -> Vec<CheckedField> {
        self.checks
            .iter()
            .filter(|c| !c.valid)
            .map(|c| c.field)
            .collect()
    }
}

fn split_yymmdd(s: &str) -> Option<(i32, Month, u8)> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = s[0..2].parse().ok()?;
    let mm: u8 = s[2..4].parse().ok()?;
    let dd: u8 = s[4..6].parse().ok()?;
    Some((yy, Month::try_from(mm).ok()?, dd))
}

/// Why a zone could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MrzError {
    #[error("{found} lines: a TD3 zone has 2 lines of 44 characters, a TD1 zone 3 lines of 30")]
    WrongLineCount { found: usize },
    #[error("line {line} has {found} characters, {expected} expected")]
    WrongLength {
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("line {line}, position {position}: {character:?} is not A-Z, 0-9 or '<'")]
    InvalidCharacter {
        line: usize,
        position: usize,
        character: char,
    },
}

/// The ICAO 9303 check digit of `data`: weights 7, 3, 1 repeating; digits count as themselves,
/// A–Z as 10–35, the filler `<` as 0. `None` if `data` holds any other character.
pub fn check_digit(data: &str) -> Option<u8> {
    const WEIGHTS: [u32; 3] = [7, 3, 1];
    let mut sum = 0u32;
    for (i, b) in data.bytes().enumerate() {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            b'<' => 0,
            _ => return None,
        };
        sum += v * WEIGHTS[i % 3];
    }
    // sum % 10 < 10, so the cast is lossless.
    Some((sum % 10) as u8)
}

/// Read a zone given as its lines (surrounding whitespace ignored).
pub fn parse(lines: &[&str]) -> Result<MrzReport, MrzError> {
    let lines: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
    let (format, width) = match lines.len() {
        2 => (MrzFormat::Td3, 44),
        3 => (MrzFormat::Td1, 30),
        n => return Err(MrzError::WrongLineCount { found: n }),
    };
    for (i, line) in lines.iter().enumerate() {
        if let Some((position, character)) = line
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c, 'A'..='Z' | '0'..='9' | '<'))
        {
            return Err(MrzError::InvalidCharacter {
                line: i + 1,
                position: position + 1,
                character,
            });
        }
        // All ASCII from here on, so byte offsets are character offsets.
        if line.len() != width {
            return Err(MrzError::WrongLength {
                line: i + 1,
                found: line.len(),
                expected: width,
            });
        }
    }
    Ok(match format {
        MrzFormat::Td3 => parse_td3(lines[0], lines[1]),
        MrzFormat::Td1 => parse_td1(lines[0], lines[1], lines[2]),
    })
}

/// Read a zone given as one text (lines separated by newlines; blank lines ignored).
pub fn parse_text(text: &str) -> Result<MrzReport, MrzError> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parse(&lines)
}

fn verdict(field: CheckedField, data: &str, found: u8) -> CheckDigitVerdict {
    // `data` and `found` are validated MRZ characters, so the digit always computes.
    let expected = check_digit(data).unwrap_or(0);
    let found = char::from(found);
    // A field that is entirely filler may carry '<' as its check digit (9303 part 4, 4.2.2.2).
    let filler_ok = found == '<' && data.bytes().all(|b| b == b'<');
    let valid = filler_ok || found.to_digit(10) == Some(u32::from(expected));
    CheckDigitVerdict {
        field,
        data: data.to_string(),
        found,
        expected,
        valid,
    }
}

fn unfill(s: &str) -> String {
    s.trim_end_matches('<').replace('<', " ")
}

fn names(field: &str) -> (String, String) {
    let (surname, given) = field.split_once("<<").unwrap_or((field, ""));
    let tidy = |s: &str| {
        s.split('<')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    (tidy(surname), tidy(given))
}

fn sex(b: u8, problems: &mut Vec<String>) -> Option<Sex> {
    match b {
        b'M' => Some(Sex::Male),
        b'F' => Some(Sex::Female),
        b'<' | b'X' => Some(Sex::Unspecified),
        other => {
            problems.push(format!(
                "sex code {:?} is not M, F, X or <",
                char::from(other)
            ));
            None
        }
    }
}

fn check_date(label: &str, raw: &str, unknown_allowed: bool, problems: &mut Vec<String>) {
    let b = raw.as_bytes();
    let part_ok = |p: &[u8], max: u32| match p {
        [b'<', b'<'] => unknown_allowed,
        [a, c] if a.is_ascii_digit() && c.is_ascii_digit() => {
            let v = u32::from(a - b'0') * 10 + u32::from(c - b'0');
            (1..=max).contains(&v)
        }
        _ => false,
    };
    let year_ok = b.len() == 6 && b[..2].iter().all(u8::is_ascii_digit);
    if !(year_ok && part_ok(&b[2..4], 12) && part_ok(&b[4..6], 31)) {
        problems.push(format!("{label} {raw:?} is not a YYMMDD date"));
    }
}

fn parse_td3(l1: &str, l2: &str) -> MrzReport {
    let mut problems = Vec::new();
    let (surname, given_names) = names(&l1[5..44]);
    let b2 = l2.as_bytes();
    let checks = vec![
        verdict(CheckedField::DocumentNumber, &l2[0..9], b2[9]),
        verdict(CheckedField::DateOfBirth, &l2[13..19], b2[19]),
        verdict(CheckedField::DateOfExpiry, &l2[21..27], b2[27]),
        verdict(CheckedField::PersonalNumber, &l2[28..42], b2[42]),
        verdict(
            CheckedField::Composite,
            &format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]),
            b2[43],
        ),
    ];
    check_date("date of birth", &l2[13..19], true, &mut problems);
    check_date("date of expiry", &l2[21..27], false, &mut problems);
    let sex = sex(b2[20], &mut problems);
    finish(MrzReport {
        format: MrzFormat::Td3,
        document_code: unfill(&l1[0..2]),
        issuing_state: unfill(&l1[2..5]),
        surname,
        given_names,
        document_number: unfill(&l2[0..9]),
        nationality: unfill(&l2[10..13]),
        date_of_birth: l2[13..19].to_string(),
        sex,
        date_of_expiry: l2[21..27].to_string(),
        optional_data: unfill(&l2[28..42]),
        optional_data_2: None,
        checks,
        problems,
        valid: false,
    })
}

fn parse_td1(l1: &str, l2: &str, l3: &str) -> MrzReport {
    let mut problems = Vec::new();
    let b1 = l1.as_bytes();
    let b2 = l2.as_bytes();
    let optional_1 = &l1[15..30];
    // A number longer than 9 characters: filler at position 15, the rest of the number and its
    // check digit at the start of the optional data (9303 part 5, 4.2.4 note j).
    let (document_number, doc_check) = if b1[14] == b'<' && !optional_1.starts_with('<') {
        let tail = optional_1.split('<').next().unwrap_or("");
        let (rest, digit) = tail.split_at(tail.len().saturating_sub(1));
        let number = format!("{}{rest}", &l1[5..14]);
        let check = verdict(
            CheckedField::DocumentNumber,
            &number,
            digit.bytes().next().unwrap_or(b'<'),
        );
        (number, check)
    } else {
        (
            l1[5..14].to_string(),
            verdict(CheckedField::DocumentNumber, &l1[5..14], b1[14]),
        )
    };
    let optional_data = if b1[14] == b'<' && !optional_1.starts_with('<') {
        let consumed = document_number.len() - 9 + 1;
        unfill(optional_1.get(consumed..).unwrap_or(""))
    } else {
        unfill(optional_1)
    };
    let checks = vec![
        doc_check,
        verdict(CheckedField::DateOfBirth, &l2[0..6], b2[6]),
        verdict(CheckedField::DateOfExpiry, &l2[8..14], b2[14]),
        verdict(
            CheckedField::Composite,
            &format!("{}{}{}{}", &l1[5..30], &l2[0..7], &l2[8..15], &l2[18..29]),
            b2[29],
        ),
    ];
    check_date("date of birth", &l2[0..6], true, &mut problems);
    check_date("date of expiry", &l2[8..14], false, &mut problems);
    let sex = sex(b2[7], &mut problems);
    let (surname, given_names) = names(l3);
    finish(MrzReport {
        format: MrzFormat::Td1,
        document_code: unfill(&l1[0..2]),
        issuing_state: unfill(&l1[2..5]),
        surname,
        given_names,
        document_number: document_number.trim_end_matches('<').to_string(),
        nationality: unfill(&l2[15..18]),
        date_of_birth: l2[0..6].to_string(),
        sex,
        date_of_expiry: l2[8..14].to_string(),
        optional_data,
        optional_data_2: Some(unfill(&l2[18..29])),
        checks,
        problems,
        valid: false,
    })
}

fn finish(mut report: MrzReport) -> MrzReport {
    report.valid = report.problems.is_empty() && report.checks.iter().all(|c| c.valid);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TD3: [&str; 2] = [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ];
    const TD1: [&str; 3] = [
        "I<UTOD231458907<<<<<<<<<<<<<<<",
        "7408122F1204159UTO<<<<<<<<<<<6",
        "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
    ];

    #[test]
    fn check_digit_matches_the_icao_examples() {
        assert_eq!(check_digit("L898902C3"), Some(6));
        assert_eq!(check_digit("740812"), Some(2));
        assert_eq!(check_digit("120415"), Some(9));
        assert_eq!(check_digit("ZE184226B<<<<<"), Some(1));
        assert_eq!(check_digit("D23145890"), Some(7));
        assert_eq!(check_digit("l"), None);
    }

    #[test]
    fn td3_specimen_is_valid_with_every_check() {
        let r = parse(&TD3).expect("parse");
        assert!(r.valid, "{:?}", r.checks);
        assert_eq!(r.checks.len(), 5);
        assert_eq!(r.document_code, "P");
        assert_eq!(r.issuing_state, "UTO");
        assert_eq!(r.document_number, "L898902C3");
        assert_eq!(r.nationality, "UTO");
        assert_eq!(r.sex, Some(Sex::Female));
        assert_eq!(r.optional_data, "ZE184226B");
        assert_eq!(
            r.birth_date(date!(2025 - 01 - 01)),
            Some(date!(1974 - 08 - 12))
        );
        assert_eq!(r.expiry_date(), Some(date!(2012 - 04 - 15)));
    }

    #[test]
    fn td1_specimen_is_valid_with_every_check() {
        let r = parse(&TD1).expect("parse");
        assert!(r.valid, "{:?}", r.checks);
        assert_eq!(r.checks.len(), 4);
        assert_eq!(r.document_code, "I");
        assert_eq!(r.document_number, "D23145890");
        assert_eq!(r.surname, "ERIKSSON");
        assert_eq!(r.given_names, "ANNA MARIA");
    }

    #[test]
    fn each_altered_check_digit_is_reported_on_its_own_field() {
        // (position in line 2, field whose own digit breaks)
        for (pos, field) in [
            (9, CheckedField::DocumentNumber),
            (19, CheckedField::DateOfBirth),
            (27, CheckedField::DateOfExpiry),
            (42, CheckedField::PersonalNumber),
            (43, CheckedField::Composite),
        ] {
            let mut l2 = TD3[1].as_bytes().to_vec();
            l2[pos] = if l2[pos] == b'5' { b'4' } else { b'5' };
            let l2 = String::from_utf8(l2).expect("ascii");
            let r = parse(&[TD3[0], &l2]).expect("parse");
            assert!(!r.valid);
            assert!(
                r.failed_checks().contains(&field),
                "{field:?}: {:?}",
                r.failed_checks()
            );
        }
    }

    #[test]
    fn an_altered_data_character_breaks_its_digit_and_the_composite() {
        // Birth date 740812 → 740813: its own digit and the composite fail.
        let l2 = TD3[1].replacen("7408122", "7408132", 1);
        let r = parse(&[TD3[0], &l2]).expect("parse");
        assert_eq!(
            r.failed_checks(),
            vec![CheckedField::DateOfBirth, CheckedField::Composite]
        );
        let l2 = TD1[1].replacen("1204159", "1304159", 1);
        let r = parse(&[TD1[0], &l2, TD1[2]]).expect("parse");
        assert_eq!(
            r.failed_checks(),
            vec![CheckedField::DateOfExpiry, CheckedField::Composite]
        );
    }

    #[test]
    fn long_td1_document_numbers_are_reassembled() {
        // 12-character number: 9 in place, filler, 3 more plus the check digit in optional data.
        let number = "D23145890123";
        let digit = check_digit(number).expect("digit");
        let mut l1 = format!("I<UTO{}<{}{}", &number[..9], &number[9..], digit);
        while l1.len() < 30 {
            l1.push('<');
        }
        let composite_data = format!(
            "{}{}{}{}",
            &l1[5..30],
            &TD1[1][0..7],
            &TD1[1][8..15],
            &TD1[1][18..29]
        );
        let composite = check_digit(&composite_data).expect("digit");
        let l2 = format!("{}{}", &TD1[1][..29], composite);
        let r = parse(&[&l1, &l2, TD1[2]]).expect("parse");
        assert_eq!(r.document_number, number);
        assert!(r.valid, "{:?}", r.checks);
    }

    #[test]
    fn structure_errors_are_typed() {
        assert_eq!(parse(&[TD3[0]]), Err(MrzError::WrongLineCount { found: 1 }));
        assert!(matches!(
            parse(&[TD3[0], &TD3[1][..43]]),
            Err(MrzError::WrongLength {
                line: 2,
                found: 43,
                expected: 44
            })
        ));
        let lower = TD3[0].to_lowercase();
        assert!(matches!(
            parse(&[&lower, TD3[1]]),
            Err(MrzError::InvalidCharacter {
                line: 1,
                position: 1,
                ..
            })
        ));
        assert!(matches!(
            parse(&["P<UTOÉRIKSSON", TD3[1]]),
            Err(MrzError::InvalidCharacter {
                line: 1,
                position: 6,
                character: 'É'
            })
        ));
    }

    #[test]
    fn parse_text_accepts_newline_separated_zones() {
        let r = parse_text(&format!("\n{}\r\n{}\n", TD3[0], TD3[1])).expect("parse");
        assert!(r.valid);
    }
}
