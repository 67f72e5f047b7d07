"""A realistic list of ASX companies for the offline sample source.

Codes, names and GICS industry groups are real; listing dates and market capitalisations are
approximate and only rank the sample universe (`ASX_UNIVERSE=top:N`). Prices are synthetic.
"""

from __future__ import annotations

from typing import NamedTuple


class SampleCompany(NamedTuple):
    symbol: str
    company_name: str
    gics_industry_group: str
    listing_date: str
    market_cap_billions: float
    price: float  # where the synthetic walk starts in 2015


SAMPLE_COMPANIES: tuple[SampleCompany, ...] = (
    SampleCompany("CBA", "COMMONWEALTH BANK OF AUSTRALIA.", "Banks", "1991-09-12", 270.0, 80.0),
    SampleCompany("BHP", "BHP GROUP LIMITED", "Materials", "1885-08-13", 215.0, 30.0),
    SampleCompany("CSL", "CSL LIMITED", "Pharmaceuticals, Biotechnology & Life Sciences",
                  "1994-06-07", 130.0, 90.0),
    SampleCompany("NAB", "NATIONAL AUSTRALIA BANK LIMITED", "Banks", "1962-01-01", 115.0, 35.0),
    SampleCompany("WBC", "WESTPAC BANKING CORPORATION", "Banks", "1970-01-01", 110.0, 34.0),
    SampleCompany("ANZ", "ANZ GROUP HOLDINGS LIMITED", "Banks", "1969-01-01", 90.0, 32.0),
    SampleCompany("WES", "WESFARMERS LIMITED", "Consumer Discretionary Distribution & Retail",
                  "1984-11-01", 85.0, 40.0),
    SampleCompany("MQG", "MACQUARIE GROUP LIMITED", "Financial Services", "2007-11-13", 80.0,
                  70.0),
    SampleCompany("GMG", "GOODMAN GROUP", "Equity Real Estate Investment Trusts (REITs)",
                  "2005-03-01", 65.0, 6.0),
    SampleCompany("FMG", "FORTESCUE LTD", "Materials", "1987-01-01", 60.0, 2.5),
    SampleCompany("TLS", "TELSTRA GROUP LIMITED", "Telecommunication Services", "1997-11-17",
                  48.0, 5.5),
    SampleCompany("RIO", "RIO TINTO LIMITED", "Materials", "1962-01-01", 45.0, 55.0),
    SampleCompany("WDS", "WOODSIDE ENERGY GROUP LTD", "Energy", "1971-01-01", 44.0, 30.0),
    SampleCompany("TCL", "TRANSURBAN GROUP", "Transportation", "1996-03-01", 40.0, 9.0),
    SampleCompany("WOW", "WOOLWORTHS GROUP LIMITED", "Consumer Staples Distribution & Retail",
                  "1993-07-01", 38.0, 28.0),
    SampleCompany("ALL", "ARISTOCRAT LEISURE LIMITED", "Consumer Services", "1996-07-01", 36.0,
                  8.0),
    SampleCompany("QBE", "QBE INSURANCE GROUP LIMITED", "Insurance", "1973-01-01", 30.0, 12.0),
    SampleCompany("REA", "REA GROUP LTD", "Media & Entertainment", "1999-12-01", 30.0, 45.0),
    SampleCompany("XRO", "XERO LIMITED", "Software & Services", "2012-11-08", 28.0, 16.0),
    SampleCompany("COL", "COLES GROUP LIMITED.", "Consumer Staples Distribution & Retail",
                  "2018-11-21", 27.0, 14.0),
    SampleCompany("WTC", "WISETECH GLOBAL LIMITED", "Software & Services", "2016-04-11", 26.0,
                  7.0),
    SampleCompany("SUN", "SUNCORP GROUP LIMITED", "Insurance", "1996-12-01", 24.0, 13.0),
    SampleCompany("STO", "SANTOS LIMITED", "Energy", "1971-01-01", 22.0, 7.0),
    SampleCompany("NST", "NORTHERN STAR RESOURCES LTD", "Materials", "2003-12-01", 21.0, 2.0),
    SampleCompany("RMD", "RESMED INC", "Health Care Equipment & Services", "1999-11-25", 21.0,
                  7.5),
    SampleCompany("PME", "PRO MEDICUS LIMITED", "Health Care Equipment & Services", "2000-10-11",
                  20.0, 2.5),
    SampleCompany("BXB", "BRAMBLES LIMITED", "Commercial & Professional Services", "2001-08-07",
                  20.0, 10.5),
    SampleCompany("SCG", "SCENTRE GROUP", "Equity Real Estate Investment Trusts (REITs)",
                  "2014-06-30", 18.0, 3.7),
    SampleCompany("COH", "COCHLEAR LIMITED", "Health Care Equipment & Services", "1995-12-08",
                  18.0, 80.0),
    SampleCompany("ORG", "ORIGIN ENERGY LIMITED", "Utilities", "2000-02-17", 17.0, 12.0),
    SampleCompany("QAN", "QANTAS AIRWAYS LIMITED", "Transportation", "1995-07-31", 15.0, 2.8),
    SampleCompany("JHX", "JAMES HARDIE INDUSTRIES PLC", "Materials", "2001-10-24", 15.0, 15.0),
    SampleCompany("SHL", "SONIC HEALTHCARE LIMITED", "Health Care Equipment & Services",
                  "1987-04-01", 13.0, 20.0),
    SampleCompany("CPU", "COMPUTERSHARE LIMITED.", "Commercial & Professional Services",
                  "1994-05-24", 13.0, 11.0),
    SampleCompany("ASX", "ASX LIMITED", "Financial Services", "1998-10-14", 12.0, 40.0),
    SampleCompany("IAG", "INSURANCE AUSTRALIA GROUP LIMITED", "Insurance", "2000-08-01", 12.0,
                  5.5),
    SampleCompany("S32", "SOUTH32 LIMITED", "Materials", "2015-05-18", 11.5, 2.0),
    SampleCompany("APA", "APA GROUP", "Utilities", "2000-06-13", 10.0, 8.5),
    SampleCompany("MIN", "MINERAL RESOURCES LIMITED", "Materials", "2006-07-03", 9.0, 7.0),
    SampleCompany("PLS", "PLS GROUP LIMITED", "Materials", "2007-09-19", 8.5, 0.35),
    SampleCompany("CAR", "CAR GROUP LIMITED", "Media & Entertainment", "2009-09-10", 8.5, 9.0),
    SampleCompany("EVN", "EVOLUTION MINING LIMITED", "Materials", "2011-11-02", 8.0, 1.0),
    SampleCompany("SEK", "SEEK LIMITED", "Media & Entertainment", "2005-04-14", 8.0, 16.0),
    SampleCompany("MPL", "MEDIBANK PRIVATE LIMITED", "Insurance", "2014-11-25", 7.5, 2.2),
    SampleCompany("TWE", "TREASURY WINE ESTATES LIMITED", "Food, Beverage & Tobacco",
                  "2011-05-10", 7.0, 5.0),
    SampleCompany("AMC", "AMCOR PLC", "Materials", "2019-06-11", 7.0, 12.0),
    SampleCompany("LYC", "LYNAS RARE EARTHS LIMITED", "Materials", "1986-01-01", 6.5, 1.5),
    SampleCompany("SGP", "STOCKLAND", "Equity Real Estate Investment Trusts (REITs)",
                  "1987-07-01", 6.5, 4.0),
    SampleCompany("TLC", "THE LOTTERY CORPORATION LIMITED", "Consumer Services", "2022-05-24",
                  6.0, 4.5),
    SampleCompany("ALX", "ATLAS ARTERIA", "Transportation", "2010-02-10", 5.5, 5.0),
    SampleCompany("JBH", "JB HI-FI LIMITED", "Consumer Discretionary Distribution & Retail",
                  "2003-10-22", 5.5, 18.0),
    SampleCompany("AWC", "ALUMINA LIMITED", "Materials", "2002-12-11", 5.0, 1.5),
    SampleCompany("SOL", "WASHINGTON H. SOUL PATTINSON & COMPANY LIMITED", "Energy",
                  "1903-01-01", 5.0, 17.0),
    SampleCompany("AGL", "AGL ENERGY LIMITED.", "Utilities", "2006-10-25", 5.0, 16.0),
    SampleCompany("NXT", "NEXTDC LIMITED", "Software & Services", "2010-12-14", 4.5, 2.2),
    SampleCompany("BSL", "BLUESCOPE STEEL LIMITED", "Materials", "2002-07-15", 4.5, 5.0),
    SampleCompany("IGO", "IGO LIMITED", "Materials", "2000-04-26", 4.0, 4.0),
    SampleCompany("A2M", "THE A2 MILK COMPANY LIMITED", "Food, Beverage & Tobacco",
                  "2015-03-31", 4.0, 0.7),
    SampleCompany("SYR", "SYRAH RESOURCES LIMITED", "Materials", "2007-06-13", 0.5, 4.0),
    SampleCompany("ZIP", "ZIP CO LIMITED.", "Financial Services", "2009-03-31", 3.0, 0.4),
    SampleCompany("CKF", "COLLINS FOODS LIMITED", "Consumer Services", "2011-08-10", 1.0, 4.0),
    SampleCompany("NHC", "NEW HOPE CORPORATION LIMITED", "Energy", "2003-09-16", 4.7, 1.5),
    SampleCompany("CCON", "THE CALMER CO INTERNATIONAL LIMITED", "Household & Personal Products",
                  "2018-12-20", 0.01, 0.05),
)
